"""The scanner service: scan jobs, leases, analysts and trade proposals.

:data:`SERVICE` is the scanner's name in the audit trail, written once here for every module
that appends an event.
"""

SERVICE = "scanner"

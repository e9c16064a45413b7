"""The executor service: the only code that sends orders (ExecuteProposal, policies, kill
switches, the reconciler).

``SERVICE`` is its name wherever the service names itself: audit events (the database checks it
against the login role), logs and the process entry point.
"""

SERVICE = "executor"

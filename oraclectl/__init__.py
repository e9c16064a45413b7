"""oraclectl: the operator's command line for Auto Invest Oracle.

It talks to the three services over gRPC as the operator principal: proposals and scan jobs at
the scanner, executions, policies, the kill switch and the audit trail at the executor, LLM usage
and limits at the budget service. Human-readable tables by default, ``--json`` for scripts, and
exit codes scripts can rely on (:mod:`oraclectl.exitcodes`).
"""

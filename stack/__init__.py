"""The local stack supervisor behind ``make run`` (``python -m stack run``).

It runs the whole system on one machine for a demo or development: the embedded PostgreSQL,
the Bitvavo and LLM simulators, and the three services as separate processes, each with only
its own environment; it seeds a demo user through the services' own RPCs and shows every scan
cycle live. Not production code: deploy/ is how the services run for real.
"""

import os

# gRPC's fork handlers crash a child that a process with live gRPC channels starts with
# subprocess (grpc/grpc#43055: the child's poller hits a closed epoll descriptor before exec, and
# the child dies with SIGSEGV — seen on initdb under load). Nothing here forks without exec, so
# the handlers are switched off before grpc is first imported (it reads this at import).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

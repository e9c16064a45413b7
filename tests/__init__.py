"""The project's tests (unit, integration, stress, e2e); tests/conftest.py holds the session fixtures."""

import os

# gRPC's fork handlers crash a child that a process with live gRPC channels starts with
# subprocess (grpc/grpc#43055: the child's poller hits a closed epoll descriptor before exec, and
# the child dies with SIGSEGV — seen on initdb under load). Nothing here forks without exec, so
# the handlers are switched off before grpc is first imported (it reads this at import).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

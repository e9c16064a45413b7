"""What a first-time user meets around stopping and starting: the kill switch is announced at
the start and at the head of every cycle with the command that turns trading on again; a
``make run`` right after Ctrl-C starts on the same fixed ports, and its cycle shows each market
skipped (TRADING_DISABLED) because trading is off; and oraclectl against the
stopped stack says it cannot reach it (exit 6) instead of printing raw gRPC text."""

from __future__ import annotations

import re
import socket
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.conftest import ORACLECTL, RunningStack, start_stack, stop_quietly

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:.*XDG_RUNTIME_DIR")]

NOTICE = "TRADING IS OFF for user 'demo'"
TURN_ON = "oraclectl trading on"
SKIPPED = "skipped: TRADING_DISABLED (not analysed)"


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, chosen by the kernel (then released for the stack)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _cycle_sections(text: str) -> list[str]:
    """The output up to and including each cycle's closing line ("this cycle: …"): a cycle's
    block, with whatever was printed before it since the previous cycle."""
    ends = [m.end() for m in re.finditer(r"^this cycle: .*$", text, re.M)]
    return [text[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def test_kill_switch_notice_restart_on_fixed_ports_and_a_stopped_stack(tmp_path) -> None:
    ports = _free_ports(3)
    fixed = ",".join(map(str, ports))
    state = tmp_path / "stack"
    first = start_stack(state, "--cycles", "2", "--keep-serving", "--interval", "10", ports=fixed)
    try:
        first.wait_for(cycles=1)
        assert NOTICE not in first.text()
        off = first.oraclectl("trading", "off", "--reason", "e2e: the notice")
        assert off.returncode == 0, off.stderr
        first.wait_for(cycles=2)
        sections = _cycle_sections(first.text())
        assert len(sections) == 2, first.text()
        assert NOTICE not in sections[0]
        assert NOTICE in sections[1] and TURN_ON in sections[1], sections[1]
        env = first.client_env()
        # Someone is connected when Ctrl-C comes (a client in another terminal): the services
        # close those connections first, which leaves them in TIME_WAIT on the services' ports.
        channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for port in ports]
        for channel in channels:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert first.interrupt() == 0, first.text()
        for channel in channels:
            channel.close()
        first_text = first.text()
    finally:
        stop_quietly(first)

    # oraclectl against the stopped stack: one line naming the service and its address; exit 6.
    done = subprocess.run(
        [str(ORACLECTL), "executions", "list"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 6, done.stderr
    assert done.stderr.strip() == (
        f"oraclectl: cannot reach the executor at 127.0.0.1:{ports[1]}; is `make run` running?"
    )

    # Straight away, on the same ports (their connections may linger in TIME_WAIT).
    second: RunningStack = start_stack(state, "--cycles", "1", ports=fixed)
    try:
        assert second.proc.wait(240) == 0, second.text()
    finally:
        stop_quietly(second)
    text = second.text()[len(first_text) :]
    assert "is in use" not in text
    (only,) = _cycle_sections(text)
    # once at the start, once at the head of the cycle
    assert only.count(NOTICE) == 2 and only.count(TURN_ON) == 2, only
    assert only.index(NOTICE) < only.index("Ctrl-C stops everything cleanly") < only.rindex(NOTICE), only
    # trading was off for the whole cycle: the scan job analysed nothing (no LLM call, no proposal)
    # and the cycle table says so on every market
    numbers = re.search(r"^this cycle: (\d+) markets scanned · 0 proposals ·", only, re.M)
    assert numbers is not None, only
    assert int(numbers.group(1)) > 0 and only.count(SKIPPED) == int(numbers.group(1)), only

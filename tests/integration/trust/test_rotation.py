"""Rotation without downtime: each credential is replaced while calls run, and none fails.

Each test runs a real budget server in this process and a load of concurrent GetUsage calls
(shared.channel, as the scanner calls). A rotation is done the way an operator does it — publish
the next credential beside the current one, switch the clients, retire the current one — by
writing the files the server and the clients watch; nothing is restarted. The load must see zero
failed calls, and afterwards, in the same process, the retired credential is refused and the
new one accepted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import grpc
from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from shared.certs import Authority, signing_key_pair, write_file
from shared.channel import Credential, TokenFile, open_channel
from shared.errors import from_rpc_error
from shared.tls import TlsFiles
from tests.harness import Postgres, eventually, new_user_id
from tests.integration.budget.servers import in_process_budget
from tests.integration.trust.conftest import usage_call
from tests.integration.trust.pki import Pki

THREADS = 4


class Load:
    """Threads calling GetUsage in a loop; counts calls and failures per phase (epoch)."""

    def __init__(self, port: int, token: Credential, tls: TlsFiles | None, user_id: str) -> None:
        self._channel = open_channel(f"127.0.0.1:{port}", token, tls=tls)
        self._stub = pb_grpc.BudgetServiceStub(self._channel)
        self._user_id = user_id
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.epoch = 0
        self.calls = 0
        self.failures: list[str] = []
        self._done_in: dict[int, int] = {}  # thread -> epoch of its last call *started* and finished
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(THREADS)]

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            started_in = self.epoch
            try:
                self._stub.GetUsage(pb.GetUsageRequest(user_id=self._user_id), timeout=60)
            except grpc.RpcError as exc:
                report = from_rpc_error(exc)
                with self._lock:
                    self.failures.append(f"epoch {started_in}: {report.code.name} {report.reason} {report.message}")
            with self._lock:
                self.calls += 1
                self._done_in[index] = started_in

    def next_phase(self) -> None:
        """Start a new epoch and wait until every thread finished a call started in it."""
        with self._lock:
            self.epoch += 1
            epoch = self.epoch
        assert eventually(lambda: all(self._done_in.get(i, -1) >= epoch for i in range(THREADS)), timeout=60)

    def reconnected(self) -> Callable[[], bool]:
        """A check that turns true once the channel's current connection was replaced by a new,
        working one (the server recycles connections: see max_connection_age_seconds)."""
        ready: list[grpc.ChannelConnectivity] = []

        def seen(state: grpc.ChannelConnectivity) -> None:
            if state is grpc.ChannelConnectivity.READY:
                ready.append(state)

        self._channel.subscribe(seen, try_to_connect=True)
        return lambda: len(ready) >= 2

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        self.next_phase()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        self._channel.close()


def write(path: Path, text: str | bytes) -> None:
    write_file(path, text.encode() if isinstance(text, str) else text, secret=True)


def test_principal_tokens_rotate_under_load(postgres: Postgres, tmp_path: Path) -> None:
    old, new = "rotation-old-token-" + "a" * 16, "rotation-new-token-" + "b" * 16
    served, client = tmp_path / "tokens.txt", tmp_path / "client-token.txt"
    write(served, f"operator:{old}\n")
    write(client, old)
    user = new_user_id()
    with (
        in_process_budget(postgres, principal_tokens_file=str(served)) as budget,
        Load(budget.port, TokenFile(client), None, user) as load,
    ):
        write(served, f"operator:{old}\noperator:{new}\n")  # publish the next token
        load.next_phase()
        write(client, new)  # switch the client
        load.next_phase()
        write(served, f"operator:{new}\n")  # retire the old token
        load.next_phase()
        retired = usage_call(budget.port, old, None, user)
        assert retired is not None and (retired.code, retired.reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "UNKNOWN_PRINCIPAL",
        )
        assert usage_call(budget.port, new, None, user) is None
        load.next_phase()
    assert load.failures == []
    assert load.calls >= 5 * THREADS


def test_user_token_signing_keys_rotate_under_load(postgres: Postgres, pki: Pki) -> None:
    next_key, next_public = signing_key_pair()
    current_public = pki.public_keys.read_bytes()
    user = new_user_id()
    signer = [pki.signing_key]

    def token() -> str:  # the identity provider signs with whichever key is current
        return pki.user_token(user, key=signer[0])

    with (
        in_process_budget(postgres, **pki.user_token_settings()) as budget,
        Load(budget.port, token, None, user) as load,
    ):
        write(pki.public_keys, current_public + next_public)  # publish the next key
        load.next_phase()
        signer[0] = next_key  # the identity provider switches
        load.next_phase()
        write(pki.public_keys, next_public)  # retire the old key
        load.next_phase()
        retired = usage_call(budget.port, pki.user_token(user), None, user)  # signed with the old key
        assert retired is not None and (retired.code, retired.reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "USER_TOKEN_INVALID",
        )
        assert usage_call(budget.port, pki.user_token(user, key=next_key), None, user) is None
        load.next_phase()
    assert load.failures == []


def test_certificates_and_the_ca_rotate_under_load(postgres: Postgres, pki: Pki) -> None:
    from tests.harness import OPERATOR_TOKEN

    server, client = pki.party("budget"), pki.party("operator")
    next_ca = Authority("the next CA")
    both = pki.ca.cert_pem + next_ca.cert_pem
    user = new_user_id()
    # Connections are recycled every second, as a long rotation would see them: every phase
    # reconnects, so the client and the server must both be on the current files.
    with (
        in_process_budget(postgres, max_connection_age_seconds="1", **pki.server_settings(server)) as budget,
        Load(budget.port, OPERATOR_TOKEN, client.files(), user) as load,
    ):
        server.trust(both)  # 1. everyone trusts the current and the next CA
        client.trust(both)
        load.next_phase()
        server.install(next_ca.issue("budget"))  # 2. new certificates from the next CA
        client.install(next_ca.issue("operator"))
        load.next_phase()
        server.trust(next_ca.cert_pem)  # 3. the old CA is retired
        client.trust(next_ca.cert_pem)
        load.next_phase()
        # A client still holding a certificate of the retired CA is refused ...
        stale = pki.party("operator", name="stale-operator")
        stale.trust(next_ca.cert_pem)
        refused = usage_call(budget.port, OPERATOR_TOKEN, stale, user)
        assert refused is not None and refused.code is grpc.StatusCode.UNAVAILABLE
        # ... and one trusting only the retired CA no longer accepts the server.
        old_trust = pki.party("operator", next_ca, name="old-trust")
        old_trust.trust(pki.ca.cert_pem)
        refused = usage_call(budget.port, OPERATOR_TOKEN, old_trust, user)
        assert refused is not None and refused.code is grpc.StatusCode.UNAVAILABLE
        # The new certificate with the new CA is accepted on a fresh connection.
        fresh = pki.party("operator", next_ca, name="fresh-operator")
        fresh.trust(next_ca.cert_pem)
        assert usage_call(budget.port, OPERATOR_TOKEN, fresh, user) is None
        # The load's own connection is recycled by the server and comes back on the new files.
        assert eventually(load.reconnected(), timeout=60)
        load.next_phase()
    assert load.failures == []
    assert load.calls >= 5 * THREADS

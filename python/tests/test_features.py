"""Extensions that arrive in the server with other issues: shared locks and
semaphores (issue 13) and Name/Identity authentication (issue 12). Each test
skips only when the server binary lacks the feature, found out from the
binary itself."""

from __future__ import annotations

import functools
import json
import socket
from pathlib import Path
from typing import Callable

import pytest
from conftest import Server, help_text

from jackrabbit_dlm import BadPayload, Client, LockStatus, NotOwner, UnsupportedFeature
from jackrabbit_dlm import protocol
from jackrabbit_dlm.compat import Locker

MINUTE = 60


@functools.lru_cache(maxsize=None)
def has_shared_locks() -> bool:
    """Whether the server answers a shared Lock with ``"Mode":"Shared"``."""
    server = Server()
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as s:
            s.sendall(b'{"ID":"probe","FileName":"probe","Action":"Lock","Expire":"1","Mode":"Shared"}\n')
            reply = s.makefile("rb").readline()
        return protocol.parse_reply(reply).mode == "Shared"
    finally:
        server.cleanup()


def has_identity_dir() -> bool:
    return "--identity-dir" in help_text()


shared_locks = pytest.mark.skipif(
    "not has_shared_locks()", reason="the server binary has no shared locks yet (issue 13)"
)
identities = pytest.mark.skipif(
    "not has_identity_dir()", reason="the server binary has no --identity-dir yet (issue 12)"
)


# -- shared locks and semaphores ------------------------------------------


@shared_locks
def test_shared_holders_keep_out_an_exclusive_one(server: Server, encoding: str) -> None:
    a, b, c = (Client(server.endpoint, id=i, encoding=encoding) for i in "abc")
    first = a.lock("s", MINUTE, mode="shared")
    second = b.lock("s", MINUTE, mode="shared")
    assert first.token != second.token and first.mode == "shared"
    with pytest.raises(NotOwner):
        c.lock("s", MINUTE)
    state = a.test_lock("s")
    assert state.status is LockStatus.OWNED and state.mode == "Shared" and state.holders == 2
    assert c.test_lock("s") == LockStatus.OTHER
    assert a.lock("s", MINUTE, mode="shared").token == first.token, "renewed in its mode"
    first.release()
    with pytest.raises(NotOwner):
        c.lock("s", MINUTE)
    second.release()
    c.lock("s", MINUTE)


@shared_locks
def test_a_semaphore_admits_its_limit(server: Server) -> None:
    clients = [Client(server.endpoint, id=f"s{i}") for i in range(3)]
    holds = [c.semaphore("pool", limit=2, ttl=MINUTE) for c in clients[:2]]
    assert clients[2].try_lock("pool", MINUTE, mode="shared", limit=2) is None, "full"
    with pytest.raises(NotOwner):
        clients[2].semaphore("pool", limit=3)  # a different limit
    holds[0].release()
    with clients[2].semaphore("pool", limit=2) as third:
        assert third.token > holds[1].token


@shared_locks
def test_waiting_shared_requests_are_granted_together(server: Server) -> None:
    holder = Client(server.endpoint, id="x")
    holder.lock("w", 0.3)
    granted = Client(server.endpoint, id="r").lock("w", MINUTE, wait=MINUTE, mode="shared")
    assert granted.mode == "shared"


@pytest.mark.skipif("has_shared_locks()", reason="the server has shared locks; this is the fallback for one without")
def test_a_server_without_shared_locks_is_told_apart(server: Server) -> None:
    a = Client(server.endpoint, id="a")
    with pytest.raises(UnsupportedFeature):
        a.lock("s", MINUTE, mode="shared")
    assert a.test_lock("s").free, "the exclusive hold it took by mistake is released"


# -- Name and Identity ----------------------------------------------------

IDENTITY = "k" * 1400


@pytest.fixture
def authenticating(start_server: Callable[..., Server], tmp_path: Path) -> Server:
    (tmp_path / "worker.cfg").write_text(json.dumps({"Identity": IDENTITY}))
    return start_server("--identity-dir", str(tmp_path))


@identities
def test_an_authenticated_client_owns_what_it_creates(authenticating: Server, encoding: str) -> None:
    server = authenticating
    authed = Client(server.endpoint, id="a", name="worker", identity=IDENTITY, encoding=encoding)
    anonymous = Client(server.endpoint, id="a", encoding=encoding)
    with authed.lock("jobs", MINUTE):
        with pytest.raises(NotOwner):
            anonymous.unlock("jobs")
    authed.put("cfg", "v", MINUTE)
    assert authed.get_text("cfg") == "v"
    with pytest.raises(NotOwner):
        anonymous.get("cfg")


@identities
def test_a_wrong_identity_is_bad_payload(authenticating: Server) -> None:
    wrong = Client(authenticating.endpoint, id="a", name="worker", identity="x" * 1400)
    with pytest.raises(BadPayload):
        wrong.lock("jobs", MINUTE)
    with pytest.raises(BadPayload):
        Client(authenticating.endpoint, id="a", name="nobody", identity=IDENTITY).lock("jobs", MINUTE)


@identities
def test_compat_sends_name_and_identity(authenticating: Server, encoding: str) -> None:
    port = authenticating.port
    good = Locker("jobs", Retry=0, RetrySleep=0, ID="a", Port=port, name="worker", identity=IDENTITY, Encoding=encoding)
    bad = Locker("jobs", Retry=0, RetrySleep=0, ID="a", Port=port, name="worker", identity="no", Encoding=encoding)
    assert good.Lock(30) == "locked"
    assert bad.Lock(30) == "badpayload"
    assert Locker("jobs", Retry=0, RetrySleep=0, ID="a", Port=port, Encoding=encoding).Unlock() == "notowner"
    assert good.Unlock() == "unlocked"

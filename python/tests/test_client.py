"""The blocking Client against the real server: the scenarios of
tests/client.rs and tests/wait.rs, clusters of endpoints, auto-renewing
holds, and value codecs."""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable, List, Optional

import pytest
from conftest import Server, free_port, wait_until
from helpers import expiry_of, parked

from jackrabbit_dlm import (
    Base64Codec,
    BadPayload,
    Client,
    CodecError,
    ConnectionFailed,
    FunctionCodec,
    Hold,
    IdentityCodec,
    LockStatus,
    MemoryGuard,
    NotOwner,
    TableCodec,
    Timeout,
)
from jackrabbit_dlm import protocol

MINUTE = 60


def rivals(server: Server, encoding: str = "plain", **kwargs: Any) -> "tuple[Client, Client]":
    return (
        Client(server.endpoint, id="a", encoding=encoding, **kwargs),
        Client(server.endpoint, id="b", encoding=encoding, **kwargs),
    )


def test_lock_rows(server: Server, encoding: str) -> None:
    a, b = rivals(server, encoding)
    hold = a.lock("jobs", MINUTE)
    assert hold.token > 0
    assert a.lock("jobs", MINUTE).token == hold.token, "renewed, same token"
    with pytest.raises(NotOwner) as caught:
        b.lock("jobs", MINUTE)
    assert str(caught.value) == 'Lock "jobs": owned by another ID (NotOwner)'
    assert b.try_lock("jobs", MINUTE) is None
    assert hold.release() is True
    assert b.lock("jobs", MINUTE).token > hold.token, "a new hold gets a greater token"


def test_the_with_statement_releases_on_exit_and_on_exceptions(server: Server) -> None:
    a, b = rivals(server)
    with a.lock("jobs", ttl=30, wait=10) as hold:
        assert isinstance(hold, Hold) and hold.token > 0
        assert b.test_lock("jobs") == LockStatus.OTHER
    assert b.test_lock("jobs") == LockStatus.FREE
    with pytest.raises(RuntimeError):
        with a.lock("jobs", 30):
            raise RuntimeError("deliberate, while holding the lock")
    assert b.test_lock("jobs") == LockStatus.FREE


def test_unlock_and_test_lock_rows(server: Server, encoding: str) -> None:
    a, b = rivals(server, encoding)
    assert a.unlock("u") is False, "absent: Unlocked, nothing released"
    assert a.test_lock("u") == LockStatus.FREE
    a.lock("u", MINUTE)
    assert a.test_lock("u") == LockStatus.OWNED
    assert a.test_lock("u").owned
    assert b.test_lock("u") == LockStatus.OTHER
    with pytest.raises(NotOwner):
        b.unlock("u")
    assert a.unlock("u") is True


def test_expiry_frees_a_lock(server: Server) -> None:
    a, b = rivals(server)
    a.lock("short", 0.2)
    expiry_of(server, 0.2)()
    assert a.test_lock("short").free
    assert a.unlock("short") is False
    b.lock("short", MINUTE)


def test_data_rows(server: Server, encoding: str) -> None:
    a, b = rivals(server, encoding)
    assert a.get("data") is None, "Get absent: NotFound"
    assert a.erase("data") is False, "Erase absent: NotFound"
    a.put("data", 'first "quoted"\n', MINUTE)
    a.put("data", "second é中", MINUTE)
    assert a.get_text("data") == "second é中"
    for call in (lambda: b.put("data", "theirs", MINUTE), lambda: b.get("data"), lambda: b.erase("data")):
        with pytest.raises(NotOwner):
            call()
    assert a.erase("data") is True
    assert a.get("data") is None
    b.put("data", b"now mine", MINUTE)
    a.lock("data", MINUTE)
    assert b.get("data") == b"now mine", "the lock and the item are independent"


def test_version_is_dlm_and_stats_on_one_connection(server: Server) -> None:
    a = Client(server.endpoint, id="a")
    assert a.version() == "JackrabbitDLM/0.1.0"
    assert a.is_dlm()
    a.lock("v", MINUTE)
    a.put("v", "x", MINUTE)
    stats = a.stats()
    assert (stats["Lock"], stats["PutNew"]) == (1, 1)
    assert stats["Connections"] == 1, "every request went over one connection"


def test_refusals_no_and_bad_payload(start_server: Callable[..., Server]) -> None:
    server = start_server("--max-memory", "20000", "--max-ttl", "100")
    a = Client(server.endpoint, id="a", codec=IdentityCodec())
    with pytest.raises(MemoryGuard) as no:
        a.put("big", "x" * 50_000, MINUTE)
    assert no.value.status == "NO"
    with pytest.raises(BadPayload):
        a.lock("big", 101)
    with pytest.raises(BadPayload):
        a.lock("big", 1, wait=101)


@pytest.mark.parametrize("codec", [TableCodec(), Base64Codec()], ids=repr)
def test_binary_codecs_round_trip_every_byte(server: Server, codec: Any, encoding: str) -> None:
    a = Client(server.endpoint, id="a", codec=codec, encoding=encoding)
    every = bytes(range(256))
    a.put("bytes", every, MINUTE)
    assert a.get("bytes") == every
    # What the server holds is the codec's text, nothing else.
    stored = Client(server.endpoint, id="a", codec=IdentityCodec()).get_text("bytes")
    assert stored == codec.encode(every)


def test_the_default_codec_is_the_table_encoding(server: Server) -> None:
    Client(server.endpoint, id="a").put("t", '{"ID"', MINUTE)
    # the protocol's own example: {"ID" is a^1l1y1W1l
    assert Client(server.endpoint, id="a", codec=IdentityCodec()).get_text("t") == "a^1l1y1W1l"


def test_own_callables_as_codec(server: Server) -> None:
    xor = FunctionCodec(lambda v: bytes(b ^ 0x5A for b in v).hex(), lambda t: bytes(b ^ 0x5A for b in bytes.fromhex(t)))
    a = Client(server.endpoint, id="a", codec=xor)
    a.put("secret", b"plain text", MINUTE)
    assert a.get("secret") == b"plain text"
    assert Client(server.endpoint, id="a", codec=IdentityCodec()).get_text("secret") == bytes(b ^ 0x5A for b in b"plain text").hex()


def test_codec_errors_are_typed(server: Server) -> None:
    identity = Client(server.endpoint, id="a", codec=IdentityCodec())
    with pytest.raises(CodecError):
        identity.put("x", b"\xff", MINUTE)
    identity.put("x", "not base64 !", MINUTE)
    with pytest.raises(CodecError):
        Client(server.endpoint, id="a", codec=Base64Codec()).get("x")


def test_reconnects_after_the_server_restarts(server: Server) -> None:
    a = Client(server.endpoint, id="a")
    old = a.lock("r", MINUTE).token
    server.restart()
    assert a.is_dlm()
    assert a.test_lock("r").free, "the new server starts empty"
    assert a.lock("r", MINUTE).token > old, "tokens grow across restarts"
    assert a.stats()["Connections"] == 1


def test_an_unlock_after_a_restart_goes_out_on_a_new_connection(server: Server) -> None:
    # The dead connection is noticed before sending, so even an Unlock,
    # which is never sent twice, goes through.
    a = Client(server.endpoint, id="a")
    a.lock("r", MINUTE)
    server.restart()
    assert a.unlock("r") is False


def test_an_unreachable_server_is_a_connection_error() -> None:
    port = free_port()
    with pytest.raises(ConnectionFailed) as caught:
        Client(("127.0.0.1", port)).lock("gone", MINUTE)
    assert str(caught.value).startswith(f"connect to 127.0.0.1:{port}:")
    assert not caught.value.may_have_applied
    assert not Client(("127.0.0.1", port)).is_dlm()


def test_a_cluster_client_moves_past_dead_endpoints(server: Server) -> None:
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    a = Client([*dead, server.endpoint], id="a")
    a.lock("c", MINUTE)
    assert a.test_lock("c").owned
    assert a.stats()["Connections"] == 1, "it stays with the node that answered"
    with pytest.raises(ConnectionFailed):
        Client(dead).version()


def test_a_cluster_client_fails_over_when_its_node_goes(start_server: Callable[..., Server]) -> None:
    first, second = start_server(), start_server()
    a = Client([first.endpoint, second.endpoint], id="a")
    a.put("k", "on the first", MINUTE)
    first.stop()
    assert a.get("k") is None, "answered by the second node"
    a.put("k", "on the second", MINUTE)
    assert Client(second.endpoint, id="a").get_text("k") == "on the second"


def test_a_timeout_drops_the_connection_and_is_not_resent(server: Server) -> None:
    holder = Client(server.endpoint, id="holder")
    holder.lock("slow", MINUTE)
    impatient = Client(server.endpoint, id="c", timeout=0.2)
    # A Lock with a Wait of its own that the client does not know of: the
    # server holds it back longer than the client's timeout.
    line = protocol.request_line(protocol.request_fields("Lock", "c", "slow", expire=60, wait=60), "plain")
    with pytest.raises(Timeout) as caught:
        impatient._exchange("Lock", "slow", line)
    assert caught.value.may_have_applied
    assert holder.stats()["Waited"] == 1, "sent once, not again"
    assert impatient.version().startswith("JackrabbitDLM"), "a new connection after the timeout"


def test_contending_threads_count_exactly(server: Server) -> None:
    """The shared counter done right: lock, read, write + 1 beside the
    hold's token, release. The token must only grow."""
    rounds, errors = 40, []

    def work() -> None:
        me = Client(server.endpoint)
        data = Client(server.endpoint, id="counter-keeper")
        try:
            for _ in range(rounds):
                with me.lock("counter", MINUTE, wait=MINUTE) as hold:
                    text = data.get_text("counter") or "0 0"
                    count, last = (int(x) for x in text.split())
                    assert hold.token > last, "fencing tokens only grow"
                    data.put("counter", f"{count + 1} {hold.token}", MINUTE)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    text = Client(server.endpoint, id="counter-keeper").get_text("counter")
    assert text is not None and text.split()[0] == str(2 * rounds)


def test_threads_share_one_client(server: Server) -> None:
    shared = Client(server.endpoint, id="shared")
    errors: List[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                shared.put(f"k{n}", f"{n}-{i}", MINUTE)
                assert shared.get_text(f"k{n}") == f"{n}-{i}"
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert shared.stats()["Connections"] == 1


# -- the Wait extension (tests/wait.rs) -----------------------------------


def waiting_lock(server: Server, id: str, name: str, wait: float, box: List[Any]) -> threading.Thread:
    """A thread whose client waits for ``name``; its Hold or error lands in ``box``."""

    def run() -> None:
        try:
            box.append(Client(server.endpoint, id=id).lock(name, MINUTE, wait=wait))
        except Exception as e:
            box.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_waiters_are_granted_in_arrival_order(server: Server) -> None:
    holder = Client(server.endpoint, id="holder")
    first = holder.lock("hot", MINUTE)
    boxes: List[List[Any]] = [[] for _ in range(5)]
    threads = []
    for i, box in enumerate(boxes):
        threads.append(waiting_lock(server, f"w{i}", "hot", MINUTE, box))
        parked(server, i + 1)  # arrival order is the order the server read them
    holder.unlock("hot")
    last = first.token
    for i, (thread, box) in enumerate(zip(threads, boxes)):
        thread.join()
        hold = box[0]
        assert isinstance(hold, Hold), hold
        assert hold.client.id == f"w{i}" and hold.token > last
        last = hold.token
        assert hold.release() is True  # the next waiter is still waiting
    assert holder.test_lock("hot").free


def test_expiry_of_the_holder_grants_the_waiter(server: Server) -> None:
    holder = Client(server.endpoint, id="holder")
    holder.lock("x", 0.3)
    hold = Client(server.endpoint, id="w").lock("x", MINUTE, wait=MINUTE)
    assert hold.client.id == "w"
    assert holder.test_lock("x") == LockStatus.OTHER


def test_a_waiter_times_out_and_others_keep_their_place(server: Server) -> None:
    holder = Client(server.endpoint, id="holder")
    holder.lock("x", MINUTE)
    long_box: List[Any] = []
    with pytest.raises(NotOwner):
        Client(server.endpoint, id="short").lock("x", MINUTE, wait=0.3)
    long_thread = waiting_lock(server, "long", "x", MINUTE, long_box)
    parked(server, 2)
    assert holder.stats()["WaitTimeout"] == 1
    holder.unlock("x")
    long_thread.join()
    assert isinstance(long_box[0], Hold) and long_box[0].client.id == "long"


def test_a_closed_waiter_is_skipped(server: Server) -> None:
    holder = Client(server.endpoint, id="holder")
    holder.lock("x", MINUTE)
    gone = socket.create_connection((server.host, server.port))
    gone.sendall(protocol.request_line(protocol.request_fields("Lock", "gone", "x", expire=30, wait=60), "plain"))
    parked(server, 1)
    box: List[Any] = []
    thread = waiting_lock(server, "next", "x", MINUTE, box)
    parked(server, 2)
    gone.close()
    # The server answers (and counts) a waiter that left as NotOwner.
    wait_until(lambda: holder.stats()["NotOwner"] >= 1, "the server to see the waiter go")
    holder.unlock("x")
    thread.join()
    assert isinstance(box[0], Hold) and box[0].client.id == "next"
    assert Client(server.endpoint, id="next").test_lock("x").owned


def test_waiting_in_the_table_encoding(server: Server) -> None:
    holder = Client(server.endpoint, id="holder", encoding="table")
    holder.lock("t", 0.2)
    hold = Client(server.endpoint, id="w", encoding="table").lock("t", MINUTE, wait=MINUTE)
    assert hold.token > 0


def test_the_holder_and_wait_zero_are_answered_at_once(server: Server) -> None:
    a, b = rivals(server)
    token = a.lock("z", MINUTE).token
    assert a.lock("z", MINUTE, wait=MINUTE).token == token
    with pytest.raises(NotOwner):
        b.lock("z", MINUTE, wait=0)
    assert a.stats()["Waited"] == 0


# -- auto-renewing holds --------------------------------------------------


def test_an_auto_renewed_hold_outlives_its_ttl(server: Server) -> None:
    a, b = rivals(server)
    hold = a.lock("renewed", 0.6, auto_renew=True)
    expiry_of(server, 0.6)()  # longer than the TTL has passed since
    assert b.try_lock("renewed", MINUTE) is None
    assert not hold.lost
    assert hold.release() is True
    assert b.try_lock("renewed", MINUTE) is not None


def test_a_hold_the_server_forgot_is_lost(server: Server) -> None:
    told: List[Optional[str]] = []
    hold = Client(server.endpoint, id="a").lock("r", 0.6, auto_renew=True, on_lost=lambda h: told.append(h.lost_reason))
    server.restart()  # forgets every hold; the next renewal is a new hold
    assert hold.wait_lost(10)
    assert told == [hold.lost_reason] and told[0] is not None and "new hold" in told[0]
    hold.release()  # quietly, the hold is gone


def test_a_hold_that_cannot_be_renewed_is_lost_after_its_ttl(server: Server) -> None:
    hold = Client(server.endpoint, id="a").lock("r", 0.6, auto_renew=True)
    server.stop()
    assert hold.wait_lost(10)
    assert hold.lost and hold.lost_reason and "connect to" in hold.lost_reason


def test_renew_by_hand(server: Server) -> None:
    a, b = rivals(server)
    hold = a.lock("h", 0.5)
    full_ttl = expiry_of(server, 0.5)
    expiry_of(server, 0.25)()
    hold.renew()  # half-way: now held until 0.75 s after the start
    full_ttl()
    assert b.try_lock("h", MINUTE) is None, "renewed: still held"
    server.restart()
    with pytest.raises(NotOwner):
        hold.renew()
    assert hold.lost

"""``jackrabbit_dlm.compat.Locker`` against the real server: the rows of
PROTOCOL.md's semantics table that tests/semantics.rs checks, through
DLMLocker's methods and return values, in both line encodings (table, as
the newest DLMLocker sends, and plain JSON, as the older one did)."""

from __future__ import annotations

from typing import Any, Union

import pytest
from conftest import Server, free_port
from helpers import expiry_of

from jackrabbit_dlm import Client, IdentityCodec
from jackrabbit_dlm.compat import Locker


def locker(server: Server, encoding: str, id: str, name: str = "jobs", **kwargs: Any) -> Locker:
    return Locker(name, Retry=0, RetrySleep=0, Timeout=10, ID=id, Port=server.port, Encoding=encoding, **kwargs)


def raw(encoding: str, text: str) -> Union[bytes, str]:
    """A raw reply as DLMLocker returns it in that encoding."""
    return text.encode() if encoding == "table" else text


def test_lock_absent_held_by_same_and_by_another(server: Server, encoding: str) -> None:
    w1, w2 = locker(server, encoding, "w1"), locker(server, encoding, "w2")
    assert w1.Lock(30) == "locked"
    token = Client(server.endpoint, id="w1").lock("jobs", 30).token
    assert w1.Lock(30) == "locked"
    assert Client(server.endpoint, id="w1").lock("jobs", 30).token == token, "renewal keeps the token"
    assert w2.Lock(30) == "notowner"


def test_lock_expired_gives_a_new_hold(server: Server, encoding: str) -> None:
    w1, w2 = locker(server, encoding, "w1"), locker(server, encoding, "w2")
    assert w1.Lock(0.2) == "locked"
    expiry_of(server, 0.2)()
    assert w2.Lock(30) == "locked"


def test_lock_by_the_holder_resets_the_ttl(server: Server, encoding: str) -> None:
    w1, w2 = locker(server, encoding, "w1"), locker(server, encoding, "w2")
    assert w1.Lock(0.3) == "locked"
    assert w1.Lock(30) == "locked"
    expiry_of(server, 0.3)()
    assert w2.Lock(30) == "notowner"


def test_unlock_rows(server: Server, encoding: str) -> None:
    w1, w2 = locker(server, encoding, "w1"), locker(server, encoding, "w2")
    assert w1.Unlock() == "unlocked", "absent"
    assert w1.Lock(30) == "locked"
    assert w2.Unlock() == "notowner", "held by another"
    assert w1.IsLocked(acquire=False) == "locked", "still held"
    assert w1.Unlock() == "unlocked", "held by the same ID"
    assert w2.Lock(30) == "locked"


def test_unlock_after_expiry_is_unlocked(server: Server, encoding: str) -> None:
    w1 = locker(server, encoding, "w1")
    assert w1.Lock(0.2) == "locked"
    expiry_of(server, 0.2)()
    assert w1.Unlock() == "unlocked"


def test_is_locked_tests_without_acquiring(server: Server, encoding: str) -> None:
    w1, w2 = locker(server, encoding, "w1"), locker(server, encoding, "w2")
    assert w1.IsLocked(acquire=False) == "unlocked"
    assert w2.IsLocked(acquire=False) == "unlocked", "testing took nothing"
    assert w1.IsLocked() == "locked", "the default acquires"
    assert w1.IsLocked(acquire=False) == "locked"
    assert w2.IsLocked(acquire=False) == "notowner"
    assert w2.IsLocked() == "notowner"


def test_put_get_erase_rows(server: Server, encoding: str) -> None:
    a, b = locker(server, encoding, "a", "cfg"), locker(server, encoding, "b", "cfg")
    assert a.Get() == {"Status": "NotFound"}
    assert a.Erase() == raw(encoding, '{"Status":"NotFound"}')
    assert a.Put(30, "v1") == raw(encoding, '{"Status":"Done","ID":"a"}')
    assert b.Put(30, "v2") == raw(encoding, '{"Status":"NotOwner"}')
    assert a.Get() == {"Status": "Done", "ID": "a", "DataStore": "v1"}
    assert b.Get() == {"Status": "NotOwner"}
    assert b.Erase() == raw(encoding, '{"Status":"NotOwner"}')
    assert a.Erase() == raw(encoding, '{"Status":"Done","ID":"a"}')
    assert a.Get() == {"Status": "NotFound"}


def test_get_returns_exactly_what_was_put(server: Server, encoding: str) -> None:
    a = locker(server, encoding, "a", "cfg")
    value = 'quote" backslash\\ newline\n tab\t nul\x00 é中😀 </script>'
    assert a.Put(30, value) == raw(encoding, '{"Status":"Done","ID":"a"}')
    assert a.Get() == {"Status": "Done", "ID": "a", "DataStore": value}
    # The server keeps what the Encoder made: the table encoding by default.
    stored = Client(server.endpoint, id="a", codec=None).get("cfg")
    assert stored == value.encode()


def test_put_replaces_value_and_ttl_and_expires(server: Server, encoding: str) -> None:
    a, b = locker(server, encoding, "a", "cfg"), locker(server, encoding, "b", "cfg")
    a.Put(0.3, "v1")
    a.Put(30, "v2")
    expiry_of(server, 0.3)()
    assert a.Get() == {"Status": "Done", "ID": "a", "DataStore": "v2"}
    a.Put(0.2, "short")
    expiry_of(server, 0.2)()
    assert a.Get() == {"Status": "NotFound"}
    assert b.Put(30, "theirs now") == raw(encoding, '{"Status":"Done","ID":"b"}')


def test_locks_and_data_items_are_separate(server: Server, encoding: str) -> None:
    a, b = locker(server, encoding, "a", "x"), locker(server, encoding, "b", "x")
    assert a.Lock(30) == "locked"
    assert a.Get() == {"Status": "NotFound"}
    assert b.Put(30, "v") == raw(encoding, '{"Status":"Done","ID":"b"}')
    assert a.IsLocked(acquire=False) == "locked"


def test_refusals_no_and_bad_payload(start_server: Any, encoding: str) -> None:
    server = start_server("--max-memory", "20000", "--max-ttl", "100")
    a = locker(server, encoding, "a", "big")
    assert a.Put(30, "x" * 50_000) == raw(encoding, '{"Status":"NO"}')
    assert a.Lock(101) == "badpayload"
    assert a.Lock(100) == "locked"


def test_version_and_is_dlm(server: Server, encoding: str) -> None:
    a = locker(server, encoding, "a")
    assert a.Version() == f"JackrabbitDLM/0.1.0:{Locker.VERSION}"
    assert a.IsDLM()


def test_custom_encoder_and_decoder(server: Server, encoding: str) -> None:
    a = locker(server, encoding, "a", "cfg", Encoder=lambda v: v[::-1], Decoder=lambda t: t[::-1])
    a.Put(30, "abc")
    assert a.Get() == {"Status": "Done", "ID": "a", "DataStore": "abc"}
    # The server keeps exactly what the Encoder made.
    assert Client(server.endpoint, id="a", codec=IdentityCodec()).get_text("cfg") == "cba"


def test_one_connection_for_every_call(server: Server, encoding: str) -> None:
    a = locker(server, encoding, "a")
    a.Lock(30)
    a.IsLocked(acquire=False)
    a.Put(30, "v")
    a.Get()
    a.Erase()
    a.Unlock()
    a.Version()
    assert Client(server.endpoint).stats()["Connections"] == 2, "the locker's and this one"


def test_reconnects_after_the_server_restarts(server: Server, encoding: str) -> None:
    a = locker(server, encoding, "a")
    assert a.Lock(30) == "locked"
    server.restart()
    assert a.IsLocked(acquire=False) == "unlocked", "the new server starts empty"
    assert a.Lock(30) == "locked"


def test_an_unreachable_server_is_failure(encoding: str) -> None:
    port = free_port()
    a = Locker("x", Retry=1, RetrySleep=0, Timeout=5, ID="a", Port=port, Encoding=encoding)
    assert a.Lock(30) == "failure"
    assert a.Error is not None and f"127.0.0.1:{port}" in a.Error
    assert a.Unlock() == "failure"
    assert a.IsLocked() == "failure"
    assert a.Put(30, "v") == "failure"
    assert a.Erase() == "failure"
    assert a.Get() is None
    assert a.Version() == f"Error:{Locker.VERSION}"
    assert not a.IsDLM()


def test_threads_share_a_locker(server: Server, encoding: str) -> None:
    import threading

    shared = locker(server, encoding, "counter-keeper", "counter")
    shared.Put(60, "0")
    results = []

    def work() -> None:
        mine = locker(server, encoding, f"worker-{threading.get_ident()}", "counter")
        for _ in range(20):
            while mine.Lock(60) != "locked":
                pass
            count = int(shared.Get()["DataStore"])  # type: ignore[index]
            shared.Put(60, str(count + 1))
            results.append(mine.Unlock())

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["unlocked"] * 40
    assert shared.Get() == {"Status": "Done", "ID": "counter-keeper", "DataStore": "40"}


@pytest.mark.parametrize("bad", ["Steal", "lOcK"])
def test_action_names_go_out_as_given(server: Server, bad: str) -> None:
    # DLMLocker never sends another action, but the server's answers to its
    # exact fields are what the Locker reads: a mixed-case action is a Lock.
    client = Client(server.endpoint, id="a")
    reply = client._exchange(bad, "x", b'{"ID":"a","FileName":"x","Action":"%s","Expire":"30"}\n' % bad.encode())
    assert reply.status == ("BadAction" if bad == "Steal" else "Locked")

"""The parts that need no server: the table codec against the shared
vectors, value codecs, the line format, reply parsing, endpoints, the resend
and failover rules, and the renewal verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from jackrabbit_dlm import (
    Base64Codec,
    CodecError,
    ConnectionFailed,
    FunctionCodec,
    IdentityCodec,
    NotOwner,
    ProtocolError,
    TableCodec,
    Timeout,
    Unavailable,
)
from jackrabbit_dlm import protocol
from jackrabbit_dlm._core import Attempts, Failure, Renewal, Settings, judge_renewal, random_id
from jackrabbit_dlm.codec import ALPHABET, decode_value, encode_value, table_decode, table_encode
from jackrabbit_dlm.compat import Locker

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "tests" / "vectors" / "table-codec.json").read_text())


def vector_bytes(case: Dict[str, str]) -> bytes:
    return bytes.fromhex(case["bytes_hex"]) if "bytes_hex" in case else case["text"].encode("utf-8")


# -- the table codec ------------------------------------------------------


def test_alphabet_is_the_protocols() -> None:
    assert ALPHABET == VECTORS["alphabet"]
    assert len(ALPHABET) == 78 and len(set(ALPHABET)) == 78


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["encoded"][:12] or "empty")
def test_valid_vectors_encode_and_decode(case: Dict[str, str]) -> None:
    data = vector_bytes(case)
    assert table_encode(data) == case["encoded"]
    assert table_decode(case["encoded"]) == data


@pytest.mark.parametrize("text", VECTORS["invalid"])
def test_invalid_vectors_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        table_decode(text)


def test_every_byte_round_trips() -> None:
    every = bytes(range(256))
    assert table_decode(table_encode(every)) == every
    assert len(table_encode(every)) == 512


# -- value codecs ---------------------------------------------------------


@pytest.mark.parametrize("codec", [TableCodec(), Base64Codec()], ids=repr)
def test_binary_codecs_round_trip_every_byte(codec: Any) -> None:
    every = bytes(range(256))
    assert decode_value(codec, encode_value(codec, every)) == every


def test_identity_keeps_text_and_refuses_other_bytes() -> None:
    assert encode_value(IdentityCodec(), "é中".encode()) == "é中"
    assert decode_value(IdentityCodec(), "é中") == "é中".encode()
    with pytest.raises(CodecError):
        encode_value(IdentityCodec(), b"\xff")


def test_decoding_garbage_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        decode_value(Base64Codec(), "not base64!")
    with pytest.raises(CodecError):
        decode_value(TableCodec(), "~~")


def test_function_codecs_are_called_and_checked() -> None:
    shout = FunctionCodec(lambda b: b.decode().upper(), lambda t: t.lower().encode())
    assert encode_value(shout, b"abc") == "ABC"
    assert decode_value(shout, "ABC") == b"abc"
    wrong = FunctionCodec(lambda b: b, lambda t: t)  # type: ignore[arg-type,return-value]
    with pytest.raises(CodecError, match="not str"):
        encode_value(wrong, b"x")
    with pytest.raises(CodecError, match="not bytes"):
        decode_value(wrong, "x")


# -- lines out ------------------------------------------------------------


def test_lock_line_matches_the_protocol_example() -> None:
    fields = protocol.request_fields("Lock", "w1", "jobs", expire=30)
    assert protocol.request_line(fields, "plain") == b'{"ID":"w1","FileName":"jobs","Action":"Lock","Expire":"30"}\n'


def test_table_lines_start_like_the_protocol_example() -> None:
    line = protocol.request_line(protocol.request_fields("Version", "w1", "x"), "table")
    assert line.startswith(b"a^1l1y1W1l") and line.endswith(b"\n")
    assert table_decode(line.decode().strip()) == b'{"ID":"w1","FileName":"x","Action":"Version"}'


def test_extension_fields_and_escapes() -> None:
    fields = protocol.request_fields(
        "Lock", 'a"b', "c\\d", expire=0.25, wait=10, mode="Shared", limit=3, auth=("host", "secret")
    )
    parsed = json.loads(protocol.request_line(fields, "plain"))
    assert parsed == {
        "ID": 'a"b',
        "FileName": "c\\d",
        "Action": "Lock",
        "Expire": "0.25",
        "Wait": "10",
        "Mode": "Shared",
        "Limit": "3",
        "Name": "host",
        "Identity": "secret",
    }
    # Wait 0 is no Wait at all.
    assert "Wait" not in protocol.request_fields("Lock", "a", "b", expire=1, wait=0)


def test_non_ascii_goes_out_as_utf8() -> None:
    line = protocol.request_line(protocol.request_fields("Put", "a", "x", expire=1, data="é\n"), "plain")
    assert "é".encode() in line and line.count(b"\n") == 1


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "0"), (30, "30"), (86400.0, "86400"), (1.5, "1.5"), (0.005, "0.005"), (1e-05, "0.00001"), (-1, "-1")],
)
def test_seconds_are_plain_decimals(seconds: float, text: str) -> None:
    assert protocol.format_seconds(seconds) == text


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_seconds_must_be_finite(bad: float) -> None:
    with pytest.raises(ValueError):
        protocol.format_seconds(bad)


def test_seconds_must_be_numbers() -> None:
    with pytest.raises(TypeError):
        protocol.format_seconds("30")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        protocol.format_seconds(True)


# -- replies in -----------------------------------------------------------


def test_replies_parse_in_both_encodings() -> None:
    plain = b'{"Status":"Locked","ID":"w1","Token":1764129000000017}\n'
    reply = protocol.parse_reply(plain)
    assert (reply.status, reply.id, reply.token) == ("Locked", "w1", 1764129000000017)
    encoded = table_encode(b'{"Status":"NO"}').encode() + b"\r\n"
    assert protocol.parse_reply(encoded).status == "NO"
    assert protocol.parse_reply(encoded).raw == b'{"Status":"NO"}'


def test_reply_fields_of_the_extensions() -> None:
    reply = protocol.parse_reply(b'{"Status":"Locked","ID":"a","Mode":"Shared","Holders":2,"Token":true}')
    assert (reply.mode, reply.holders, reply.token) == ("Shared", 2, None)
    stats = protocol.parse_reply(b'{"Status":"Stats","Lock":3,"MemoryMax":0.25,"Leader":true}')
    assert stats.counters() == {"Lock": 3, "MemoryMax": 0.25}


@pytest.mark.parametrize("bad", [b"nonsense", b"[1]", b"{}", b'{"Status":5}', b"{not json", b"\xff\xfe"])
def test_garbage_is_a_protocol_error(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse_reply(bad)


# -- endpoints ------------------------------------------------------------


@pytest.mark.parametrize(
    "given, parsed",
    [
        ("10.0.0.1:4000", ("10.0.0.1", 4000)),
        ("dlm.internal", ("dlm.internal", 37373)),
        ("[::1]:4000", ("::1", 4000)),
        ("::1", ("::1", 37373)),
        (":4000", ("127.0.0.1", 4000)),
        (("h", 5), ("h", 5)),
    ],
)
def test_endpoints(given: Any, parsed: Any) -> None:
    assert protocol.parse_endpoint(given) == parsed


def test_endpoint_lists_and_bad_ports() -> None:
    assert protocol.parse_endpoints(["a:1", ("b", 2)]) == [("a", 1), ("b", 2)]
    assert protocol.parse_endpoints("a:1") == [("a", 1)]
    for bad in ["a:x", "a:0", "a:70000"]:
        with pytest.raises(ValueError):
            protocol.parse_endpoint(bad)
    with pytest.raises(ValueError):
        protocol.parse_endpoints([])
    assert protocol.server_name(("::1", 5)) == "[::1]:5"


# -- the resend and failover rules ----------------------------------------

ONE = [("a", 1)]
THREE = [("a", 1), ("b", 2), ("c", 3)]
LOST = ConnectionResetError("reset")


def route(action: str, endpoints: List[Any], failures: List[Failure]) -> List[int]:
    """The endpoints a request is sent to as ``failures`` happen in turn."""
    attempts = Attempts(action, endpoints, 0)
    visited = [attempts.index]
    for failure in failures:
        attempts.failed(failure, LOST)
        visited.append(attempts.index)
    return visited


def test_a_lost_reply_to_a_repeatable_request_is_asked_again_once() -> None:
    assert route("Lock", ONE, [Failure.CLOSED]) == [0, 0]
    with pytest.raises(ConnectionFailed) as caught:
        route("Lock", ONE, [Failure.CLOSED, Failure.CLOSED])
    assert caught.value.may_have_applied


@pytest.mark.parametrize("action", ["Unlock", "Erase"])
def test_a_lost_reply_to_unlock_or_erase_is_never_asked_again(action: str) -> None:
    with pytest.raises(ConnectionFailed) as caught:
        route(action, THREE, [Failure.CLOSED])
    assert caught.value.may_have_applied
    assert "receive from a:1" in str(caught.value)


@pytest.mark.parametrize("action", ["Unlock", "Erase", "Lock"])
def test_a_line_that_was_not_sent_is_sent_again(action: str) -> None:
    assert route(action, ONE, [Failure.SEND]) == [0, 0]
    assert route(action, THREE, [Failure.SEND]) == [0, 1]


def test_a_timeout_is_never_followed_by_a_resend() -> None:
    attempts = Attempts("Get", THREE, 0)
    with pytest.raises(Timeout):
        attempts.failed(Failure.BROKEN, TimeoutError("timed out"))
    with pytest.raises(ConnectionFailed):
        Attempts("Get", THREE, 0).failed(Failure.BROKEN, OSError("odd"))


def test_unreachable_endpoints_are_each_tried_once() -> None:
    assert route("Unlock", THREE, [Failure.CONNECT, Failure.CONNECT]) == [0, 1, 2]
    with pytest.raises(ConnectionFailed) as caught:
        route("Unlock", THREE, [Failure.CONNECT] * 3)
    assert not caught.value.may_have_applied
    assert caught.value.during == "connect to"
    with pytest.raises(ConnectionFailed):
        route("Version", ONE, [Failure.CONNECT])


def test_a_cluster_retries_on_the_next_node_once_per_node() -> None:
    assert route("Put", THREE, [Failure.CLOSED, Failure.CLOSED, Failure.CLOSED]) == [0, 1, 2, 0]
    with pytest.raises(ConnectionFailed):
        route("Put", THREE, [Failure.CLOSED] * 4)


def test_start_is_the_endpoint_that_last_worked() -> None:
    attempts = Attempts("Lock", THREE, 2)
    attempts.failed(Failure.CONNECT, LOST)
    assert attempts.index == 0


def unavailable_reply() -> protocol.Reply:
    return protocol.parse_reply(b'{"Status":"Unavailable"}')


def test_unavailable_moves_a_repeatable_request_to_the_next_node() -> None:
    attempts = Attempts("Lock", THREE, 0)
    attempts.unavailable("jobs", unavailable_reply())
    assert attempts.index == 1
    attempts.unavailable("jobs", unavailable_reply())
    attempts.unavailable("jobs", unavailable_reply())
    with pytest.raises(Unavailable) as caught:
        attempts.unavailable("jobs", unavailable_reply())
    assert caught.value.status == "Unavailable"


@pytest.mark.parametrize("action", ["Unlock", "Erase"])
def test_unavailable_is_final_for_unlock_and_erase(action: str) -> None:
    with pytest.raises(Unavailable) as caught:
        Attempts(action, THREE, 0).unavailable("jobs", unavailable_reply())
    assert isinstance(caught.value.reply, protocol.Reply)


def test_unavailable_from_a_single_server_is_final() -> None:
    with pytest.raises(Unavailable):
        Attempts("Lock", ONE, 0).unavailable("jobs", unavailable_reply())


# -- renewal verdicts -----------------------------------------------------


def test_renewal_verdicts() -> None:
    assert judge_renewal(7, 7, 1.0, 2.0)[0] is Renewal.RENEWED
    verdict, why = judge_renewal(7, 8, 1.0, 2.0)
    assert verdict is Renewal.LOST and "new hold" in why
    down = ConnectionFailed("a:1", "connect to", LOST, False)
    assert judge_renewal(7, down, 1.0, 2.0)[0] is Renewal.RETRY
    assert judge_renewal(7, down, 2.5, 2.0)[0] is Renewal.LOST
    assert judge_renewal(7, NotOwner("Lock", "x", "NotOwner"), 1.0, 2.0)[0] is Renewal.LOST


# -- settings and the compat layer's fields -------------------------------


def test_random_ids_are_url_safe_and_sized() -> None:
    ids = {random_id() for _ in range(200)}
    assert len(ids) == 200
    for id in ids:
        assert 37 <= len(id) <= 72
        assert all(c.isalnum() or c in "-_" for c in id)


def test_settings_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Settings(encoding="json")
    with pytest.raises(ValueError):
        Settings(name="host")
    settings = Settings()
    with pytest.raises(ValueError):
        settings.lock_op("x", 1, -1, "exclusive", None)
    with pytest.raises(ValueError):
        settings.lock_op("x", 1, 0, "both", None)
    with pytest.raises(ValueError):
        settings.lock_op("x", 1, 0, "exclusive", 3)
    with pytest.raises(TypeError):
        settings.put_op("x", 5, 1)  # type: ignore[arg-type]


def test_compat_sends_upstreams_fields() -> None:
    locker = Locker("jobs", ID="w1")
    assert locker._fields("Lock", 300) == {"ID": "w1", "FileName": "jobs", "Action": "Lock", "Expire": "300"}
    assert locker._fields("Unlock", 0)["Expire"] == "0"
    get = protocol.request_line(locker._fields("Get", 0, DataStore=None), "plain")
    assert get == b'{"ID":"w1","FileName":"jobs","Action":"Get","Expire":"0","DataStore":null}\n'
    authed = Locker("jobs", ID="w1", name="host", identity="secret")
    assert authed._fields("Lock", 1.5)["Expire"] == "1.5"
    assert (authed._fields("Lock", 1)["Name"], authed._fields("Lock", 1)["Identity"]) == ("host", "secret")


def test_compat_helpers() -> None:
    locker = Locker("jobs")
    assert 37 <= len(locker.ID) <= 72
    assert locker.dlmDecode(locker.dlmEncode("é")) == "é".encode()
    assert locker.dlmDecode(locker.dlmEncode({"a": 1})) == b'{"a": 1}'
    assert locker.dlmDecode("") == b""
    shuffled = locker.ShuffleJSON('{"a": {"b": 1, "c": [{"d": 2}]}, "e": 3}')
    assert shuffled == {"a": {"b": 1, "c": [{"d": 2}]}, "e": 3}
    assert locker.host == "127.0.0.1" and locker.port == 37373

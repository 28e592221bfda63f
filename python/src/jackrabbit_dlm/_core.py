"""Everything the sync and the asyncio clients share: what each call sends,
what its reply means, where a request goes after a failure, and when an
auto-renewed hold counts as lost. No I/O here; the two clients only move
bytes (see ``client.py`` and ``aio.py``).

Where a request goes, and when it is sent again
-----------------------------------------------

A client keeps one connection, to one of its endpoints, and sends every
request over it. For each request:

* Before reusing the connection it checks, without blocking, that the server
  has not closed it (a restart, an idle timeout); if it has, the request goes
  out on a new connection. Nothing was sent, so this is always safe.
* A connection that cannot be made moves the request to the next endpoint;
  when every endpoint has refused, the call fails.
* A line that could not be sent in full was not acted on (the server acts on
  whole lines only): it is sent again on a new connection.
* A connection that closes after the line went out and before the reply came
  may have been acted on. ``Lock``, ``TestLock``, ``Put``, ``Get``,
  ``Version`` and ``Stats`` are sent again: done twice by one ID they leave
  the same state and give the same answer as once. ``Unlock`` and ``Erase``
  are not: the first copy may have released the lock or erased the item, and
  another ID may have taken it since, so a repeat would report ``NotOwner``
  for a release that happened. The caller gets :class:`ConnectionFailed`
  with ``may_have_applied`` set instead.
* An ``Unavailable`` reply (a cluster that could not commit in time) moves a
  request to the next endpoint under the same rule: never an ``Unlock`` or
  ``Erase``.
* A timeout is never followed by a resend: the reply may still be coming.

A request is sent again at most once per endpoint (at most once with one
endpoint, as the Rust client does). In a cluster every retry goes to the
next endpoint; with one endpoint, to a new connection to it.
"""

from __future__ import annotations

import enum
import math
import secrets
from typing import Any, Callable, Dict, Generator, Generic, List, Optional, Sequence, Tuple, TypeVar, Union

from . import protocol
from .codec import Codec, TableCodec, decode_value, encode_value
from .errors import (
    ConnectionFailed,
    DLMError,
    NotOwner,
    ProtocolError,
    Timeout,
    Unavailable,
    UnsupportedFeature,
    refusal,
)
from .protocol import EndpointLike, Reply

T = TypeVar("T")

#: Actions that are never sent again once they may have reached the server.
NOT_REPEATABLE = frozenset({"Unlock", "Erase"})

#: Lock modes, as callers name them.
EXCLUSIVE = "exclusive"
SHARED = "shared"

#: How soon a failed renewal is tried again while the hold has time left.
RENEW_RETRY = 0.2


class Failure(enum.Enum):
    """How one attempt at a round trip failed."""

    #: No connection could be made: nothing was sent.
    CONNECT = "connect to"
    #: The line did not leave in full: the server did not act on it.
    SEND = "send to"
    #: The connection closed after sending, before the reply: it may have acted.
    CLOSED = "receive from"
    #: Anything else after sending, a timeout included: never sent again.
    BROKEN = "read from"


class Attempts:
    """The route of one request over the endpoints (rules in the module
    documentation). ``index`` is where the next attempt goes; :meth:`failed`
    and :meth:`unavailable` either move it or raise what the caller gets."""

    def __init__(self, action: str, endpoints: Sequence[Tuple[str, int]], start: int):
        self.action = action
        self.index = start
        self._endpoints = endpoints
        self._repeatable = action not in NOT_REPEATABLE
        self._resends_left = len(endpoints)
        self._unreachable: set[int] = set()
        self._sent = False

    def server(self) -> str:
        """The endpoint of the current attempt, for messages."""
        return protocol.server_name(self._endpoints[self.index])

    def failed(self, failure: Failure, cause: BaseException) -> None:
        """Records a failed attempt: moves on, or raises ConnectionFailed."""
        server = self.server()
        if failure is Failure.CONNECT:
            self._unreachable.add(self.index)
            if len(self._unreachable) == len(self._endpoints):
                raise ConnectionFailed(server, failure.value, cause, self._sent)
            self._advance(skip_unreachable=True)
            return
        if failure is Failure.SEND:
            self._retry_or(ConnectionFailed(server, failure.value, cause, self._sent))
            return
        self._sent = True
        if failure is Failure.BROKEN:
            if isinstance(cause, TimeoutError):
                raise Timeout(server, cause)
            raise ConnectionFailed(server, failure.value, cause, True)
        error = ConnectionFailed(server, failure.value, cause, True)
        if not self._repeatable:
            raise error
        self._retry_or(error)

    def unavailable(self, name: str, reply: Reply) -> None:
        """Records an ``Unavailable`` reply: moves on, or raises Unavailable."""
        self._sent = True
        error = Unavailable(self.action, name, "Unavailable")
        error.reply = reply
        if not self._repeatable or len(self._endpoints) == 1:
            raise error
        self._retry_or(error)

    def _retry_or(self, error: DLMError) -> None:
        if self._resends_left == 0:
            raise error
        self._resends_left -= 1
        self._advance(skip_unreachable=False)

    def _advance(self, skip_unreachable: bool) -> None:
        count = len(self._endpoints)
        for step in range(1, count + 1):
            candidate = (self.index + step) % count
            if not (skip_unreachable and candidate in self._unreachable):
                self.index = candidate
                return


class Op(Generic[T]):
    """One call, ready to send: the request line, how long the server may
    hold it back on purpose (``Wait``), and what its reply means."""

    __slots__ = ("action", "name", "line", "wait", "finish")

    def __init__(self, action: str, name: str, line: bytes, wait: float, finish: Callable[[Reply], T]):
        self.action = action
        self.name = name
        self.line = line
        self.wait = wait
        self.finish = finish


class LockStatus(enum.Enum):
    """Who holds a lock, as ``TestLock`` tells."""

    #: This ID holds it.
    OWNED = "Locked"
    #: Nobody holds it.
    FREE = "Unlocked"
    #: Another ID holds it.
    OTHER = "NotOwner"


class LockState:
    """The answer of :meth:`Client.test_lock`: ``status``, and for a shared
    lock held by this ID its ``mode`` and number of ``holders``."""

    __slots__ = ("status", "mode", "holders")

    def __init__(self, status: LockStatus, mode: Optional[str] = None, holders: Optional[int] = None):
        self.status = status
        self.mode = mode
        self.holders = holders

    @property
    def owned(self) -> bool:
        """Whether this ID holds the lock."""
        return self.status is LockStatus.OWNED

    @property
    def free(self) -> bool:
        """Whether nobody holds the lock."""
        return self.status is LockStatus.FREE

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LockStatus):
            return self.status is other
        if isinstance(other, LockState):
            return (self.status, self.mode, self.holders) == (other.status, other.mode, other.holders)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.status, self.mode, self.holders))

    def __repr__(self) -> str:
        extra = f", mode={self.mode!r}, holders={self.holders!r}" if self.mode else ""
        return f"LockState({self.status.name}{extra})"


def random_id() -> str:
    """A fresh random ID: 37 to 72 URL-safe characters, like DLMLocker's."""
    return secrets.token_urlsafe(48)[: 37 + secrets.randbelow(36)]


def check_ttl(what: str, seconds: float) -> float:
    """``seconds`` if it is a finite number (as the wire needs), else an error."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if not math.isfinite(seconds):
        raise ValueError(f"{what} must be finite, not {seconds}")
    return seconds


def as_bytes(value: Union[bytes, bytearray, memoryview, str]) -> bytes:
    """A value to store: bytes as they are, text as UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a value must be bytes or str, not {type(value).__name__}")


class Settings:
    """What a client is: its ID, endpoints, line encoding, value codec,
    timeout and optional ``Name``/``Identity``. Builds each call's
    :class:`Op`; shared by the sync and the asyncio client."""

    def __init__(
        self,
        endpoints: Union[EndpointLike, Sequence[EndpointLike]] = "127.0.0.1:37373",
        *,
        id: Optional[str] = None,
        encoding: str = protocol.PLAIN,
        codec: Optional[Codec] = None,
        timeout: float = 10.0,
        name: Optional[str] = None,
        identity: Optional[str] = None,
    ):
        self.endpoints: List[Tuple[str, int]] = protocol.parse_endpoints(endpoints)
        self.id: str = random_id() if id is None else str(id)
        self.encoding = protocol.check_encoding(encoding)
        self.codec: Codec = TableCodec() if codec is None else codec
        self.timeout = max(0.001, check_ttl("timeout", timeout))
        if (name is None) != (identity is None):
            raise ValueError("name and identity go together: give both or neither")
        self.auth: Optional[Tuple[str, str]] = None if name is None or identity is None else (name, identity)

    def copy_args(self) -> Dict[str, Any]:
        """Keyword arguments that make another client of the same ID."""
        name, identity = self.auth if self.auth else (None, None)
        return dict(
            id=self.id,
            encoding=self.encoding,
            codec=self.codec,
            timeout=self.timeout,
            name=name,
            identity=identity,
        )

    def op(self, action: str, name: str, finish: Callable[[Reply], T], wait: float = 0.0, **fields: Any) -> Op[T]:
        line = protocol.request_line(
            protocol.request_fields(action, self.id, name, wait=wait, auth=self.auth, **fields),
            self.encoding,
        )
        return Op(action, name, line, wait, finish)

    def lock_op(self, name: str, ttl: float, wait: float, mode: str, limit: Optional[int]) -> Op[int]:
        """``Lock``: its result is the hold's fencing token."""
        check_ttl("ttl", ttl)
        if check_ttl("wait", wait) < 0:
            raise ValueError("wait must not be negative")
        if mode not in (EXCLUSIVE, SHARED):
            raise ValueError(f"mode must be 'exclusive' or 'shared', not {mode!r}")
        if limit is not None and (mode != SHARED or limit < 1):
            raise ValueError("limit is a positive holder count, for shared locks only")
        shared = mode == SHARED

        def finish(reply: Reply) -> int:
            if reply.status != "Locked":
                raise refusal("Lock", name, reply.status)
            token = reply.token
            if token is None:
                raise ProtocolError("a Locked reply without a Token (no fencing-token extension?)")
            if shared and reply.mode != "Shared":
                raise UnsupportedFeature(
                    f"the server granted {name!r} without Mode Shared: it has no shared locks"
                )
            return token

        return self.op("Lock", name, finish, wait, expire=ttl, mode="Shared" if shared else None, limit=limit)

    def unlock_op(self, name: str) -> Op[bool]:
        """``Unlock``: true if this ID held the lock, false if nobody did."""

        def finish(reply: Reply) -> bool:
            if reply.status != "Unlocked":
                raise refusal("Unlock", name, reply.status)
            return reply.id is not None

        return self.op("Unlock", name, finish)

    def test_op(self, name: str) -> Op[LockState]:
        def finish(reply: Reply) -> LockState:
            if reply.status == "Locked":
                return LockState(LockStatus.OWNED, reply.mode, reply.holders)
            if reply.status in ("Unlocked", "NotOwner"):
                return LockState(LockStatus(reply.status))
            raise refusal("TestLock", name, reply.status)

        return self.op("TestLock", name, finish)

    def put_op(self, name: str, value: Union[bytes, str], ttl: float) -> Op[None]:
        text = encode_value(self.codec, as_bytes(value))

        def finish(reply: Reply) -> None:
            if reply.status != "Done":
                raise refusal("Put", name, reply.status)

        return self.op("Put", name, finish, expire=check_ttl("ttl", ttl), data=text)

    def get_op(self, name: str) -> Op[Optional[bytes]]:
        def finish(reply: Reply) -> Optional[bytes]:
            if reply.status == "NotFound":
                return None
            if reply.status != "Done":
                raise refusal("Get", name, reply.status)
            text = reply.data
            if text is None:
                raise ProtocolError("a Get reply without a DataStore string")
            return decode_value(self.codec, text)

        return self.op("Get", name, finish)

    def erase_op(self, name: str) -> Op[bool]:
        def finish(reply: Reply) -> bool:
            if reply.status == "NotFound":
                return False
            if reply.status != "Done":
                raise refusal("Erase", name, reply.status)
            return True

        return self.op("Erase", name, finish)

    def version_op(self) -> Op[str]:
        def finish(reply: Reply) -> str:
            if reply.status != "Version":
                raise refusal("Version", "dlm", reply.status)
            if reply.id is None:
                raise ProtocolError("a Version reply without an ID")
            return reply.id

        return self.op("Version", "dlm", finish)

    def stats_op(self) -> Op[Dict[str, Union[int, float]]]:
        def finish(reply: Reply) -> Dict[str, Union[int, float]]:
            if reply.status != "Stats":
                raise refusal("Stats", "dlm", reply.status)
            return reply.counters()

        return self.op("Stats", "dlm", finish)


def round_trip(
    op: Op[Any], endpoints: Sequence[Tuple[str, int]], index: int, connected: bool, timeout: float
) -> Generator[Tuple[str, Any], Any, Tuple[Reply, int]]:
    """One request's round trip as steps for a driver to carry out, so the
    sync and the asyncio client share every decision. It yields
    ``("connect", endpoint_index)``, ``("send", line)`` and ``("read",
    timeout)``; the driver sends back the line read (else None) or throws
    the OSError or EOFError the step met, having dropped the connection.
    Returns the reply and the index of the endpoint that gave it.
    ``connected`` says whether the driver's connection to ``endpoints[index]``
    is open and usable."""
    attempts = Attempts(op.action, endpoints, index)
    while True:
        if not connected or index != attempts.index:
            try:
                yield ("connect", attempts.index)
            except OSError as e:
                attempts.failed(Failure.CONNECT, e)
                continue
            connected, index = True, attempts.index
        try:
            yield ("send", op.line)
        except OSError as e:
            connected = False
            attempts.failed(Failure.SEND, e)
            continue
        try:
            line = yield ("read", timeout + op.wait)
        except (EOFError, ConnectionError) as e:
            connected = False
            attempts.failed(Failure.CLOSED, e)
            continue
        except OSError as e:  # TimeoutError included
            connected = False
            attempts.failed(Failure.BROKEN, e)
            continue
        reply = protocol.parse_reply(line)
        if reply.status == "Unavailable":
            attempts.unavailable(op.name, reply)
            continue
        return reply, index


class Renewal(enum.Enum):
    """What one renewal of an auto-renewed hold found."""

    RENEWED = "renewed"
    #: The server could not be asked, but the hold still has time left.
    RETRY = "retry"
    LOST = "lost"


def judge_renewal(
    token: int, outcome: Union[int, DLMError], now: float, held_until: float
) -> Tuple[Renewal, str]:
    """Judges a renewal whose result is ``outcome`` (the new token, or the
    error): renewed only with the same token; a new token means the server
    forgot the hold (another ID may have held it in between); network
    failures are retried until the hold has certainly run out."""
    if isinstance(outcome, int):
        if outcome == token:
            return Renewal.RENEWED, ""
        return Renewal.LOST, "the server granted a new hold: it had forgotten the old one"
    if isinstance(outcome, ConnectionFailed) and now < held_until:
        return Renewal.RETRY, str(outcome)
    if isinstance(outcome, NotOwner):
        return Renewal.LOST, f"another ID holds it ({outcome})"
    return Renewal.LOST, str(outcome)


class RenewalClock:
    """When an auto-renewed hold renews next, and whether it is lost; shared
    by the renewing thread and the renewing task."""

    def __init__(self, token: int, ttl: float, started: float):
        self.token = token
        self.ttl = ttl
        self.every = ttl / 3
        self.held_until = started + ttl
        self.next = started + self.every
        self.lost_reason = ""

    def delay(self, now: float) -> float:
        """Seconds until the next renewal."""
        return max(0.0, self.next - now)

    def record(self, outcome: Union[int, DLMError], asked_at: float) -> bool:
        """Records a renewal asked at ``asked_at``; False once the hold is
        lost (``lost_reason`` says why)."""
        verdict, why = judge_renewal(self.token, outcome, asked_at, self.held_until)
        if verdict is Renewal.RENEWED:
            # Counted from the request, not the reply: errs on the short side.
            self.held_until, self.next = asked_at + self.ttl, asked_at + self.every
        elif verdict is Renewal.RETRY:
            self.next = asked_at + min(RENEW_RETRY, self.every)
        else:
            self.lost_reason = why
            return False
        return True

"""The blocking client: :class:`Client` over one persistent connection, and
:class:`Hold`, a held lock that releases itself and can renew itself.

>>> client = Client("127.0.0.1:37373")                   # doctest: +SKIP
>>> with client.lock("jobs", ttl=30, wait=10) as hold:   # doctest: +SKIP
...     print("fencing token", hold.token)

A client is thread-safe: calls from several threads take turns on its
connection. A call that waits on the server (``wait=``) holds the connection
for that long, so threads that must not wait behind it use their own client.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from types import TracebackType
from typing import Any, Callable, Dict, Optional, Sequence, Type, TypeVar, Union

from . import protocol
from ._core import EXCLUSIVE, SHARED, LockState, Op, RenewalClock, Settings, round_trip
from .codec import Codec
from .errors import DLMError, NotOwner, UnsupportedFeature
from .protocol import EndpointLike

T = TypeVar("T")

#: Called once, with the hold, when an auto-renewed hold is lost.
LostCallback = Callable[["Hold"], object]


def _same(reply: protocol.Reply) -> protocol.Reply:
    return reply


class _Connection:
    """A connected socket and the bytes read past the last reply."""

    __slots__ = ("sock", "buffer", "timeout")

    def __init__(self, endpoint: "tuple[str, int]", timeout: float):
        self.sock = socket.create_connection(endpoint, timeout=timeout)
        # One small line per request, answered at once: no Nagle delay.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.timeout = timeout

    def usable(self) -> bool:
        """Whether the server has not closed the connection and nothing
        unread is waiting (stray bytes would put replies out of step)."""
        if self.buffer:
            return False
        readable, _, _ = select.select([self.sock], [], [], 0)
        return not readable

    def send(self, line: bytes, timeout: float) -> None:
        self._set_timeout(timeout)
        self.sock.sendall(line)

    def read_line(self, timeout: float) -> bytes:
        """The next line (newline included), or EOFError if the server closed
        first, or TimeoutError."""
        deadline = time.monotonic() + timeout
        left = timeout
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line, self.buffer = self.buffer[: end + 1], self.buffer[end + 1 :]
                return line
            if left <= 0:
                raise TimeoutError("timed out")
            self._set_timeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("timed out") from None
            if not chunk:
                raise EOFError("the server closed the connection before replying")
            self.buffer += chunk
            left = deadline - time.monotonic()

    def _set_timeout(self, timeout: float) -> None:
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Client:
    """A Jackrabbit DLM client over one persistent connection.

    ``endpoints`` is one server (``"host:port"``, ``"host"``, ``(host,
    port)``) or a list of a cluster's nodes, tried in turn on connection
    failures and ``Unavailable`` replies. ``id`` is the owner of everything
    this client locks or stores (default: a fresh random ID; clients given
    the same ID are one owner). ``encoding`` is ``"plain"`` (JSON lines) or
    ``"table"`` (table-encoded lines). ``codec`` turns stored bytes into the
    string the server keeps (default :class:`~jackrabbit_dlm.codec.TableCodec`,
    as DLMLocker's). ``timeout`` bounds connecting and each reply (plus any
    ``wait``). ``name`` and ``identity`` authenticate every request on a
    server started with ``--identity-dir``.

    Errors are exceptions (:mod:`jackrabbit_dlm.errors`), never status
    strings.
    """

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
        self._settings = Settings(
            endpoints, id=id, encoding=encoding, codec=codec, timeout=timeout, name=name, identity=identity
        )
        self._mutex = threading.Lock()
        self._connection: Optional[_Connection] = None
        self._index = 0

    @property
    def id(self) -> str:
        """The ID this client acts as."""
        return self._settings.id

    @property
    def endpoints(self) -> "list[tuple[str, int]]":
        """The servers this client talks to, as ``(host, port)``."""
        return list(self._settings.endpoints)

    def __repr__(self) -> str:
        return f"Client({self.endpoints!r}, id={self.id!r}, encoding={self._settings.encoding!r})"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection (the next call opens a new one)."""
        with self._mutex:
            self._drop()

    def clone(self) -> "Client":
        """Another client with this one's settings and ID (the same owner),
        on a connection of its own."""
        return Client(self._settings.endpoints, **self._settings.copy_args())

    # -- locks --------------------------------------------------------------

    def lock(
        self,
        name: str,
        ttl: float = 30,
        wait: float = 0,
        *,
        mode: str = EXCLUSIVE,
        limit: Optional[int] = None,
        auto_renew: bool = False,
        on_lost: Optional[LostCallback] = None,
    ) -> "Hold":
        """Takes (or renews) the lock ``name`` for ``ttl`` seconds and returns
        the :class:`Hold`, which is also a context manager that releases it.

        With ``wait`` the server queues the request, first come first served,
        for up to that many seconds while another ID holds the lock; without,
        or when the wait runs out, :class:`~jackrabbit_dlm.errors.NotOwner`.
        ``mode="shared"`` takes a shared hold (``limit`` holders at most: a
        semaphore). ``auto_renew`` renews the hold every ``ttl/3`` seconds on
        a thread until it is released; ``on_lost`` is called if it is lost.
        """
        op = self._settings.lock_op(name, ttl, wait, mode, limit)
        token = self._acquire(op)
        hold = Hold(self, name, token, ttl, mode, limit)
        if auto_renew:
            hold._start_renewing(on_lost)
        return hold

    def try_lock(
        self, name: str, ttl: float = 30, *, mode: str = EXCLUSIVE, limit: Optional[int] = None
    ) -> "Optional[Hold]":
        """Takes the lock with one request; ``None`` if another ID holds it."""
        try:
            return self.lock(name, ttl, mode=mode, limit=limit)
        except NotOwner:
            return None

    def semaphore(
        self, name: str, limit: int, ttl: float = 30, wait: float = 0, **kwargs: Any
    ) -> "Hold":
        """One of ``limit`` shared holds of ``name``: ``lock(mode="shared")``."""
        return self.lock(name, ttl, wait, mode=SHARED, limit=limit, **kwargs)

    def test_lock(self, name: str) -> LockState:
        """Who holds the lock, changing nothing: ``LockStatus.OWNED`` (this ID),
        ``FREE`` or ``OTHER``."""
        return self._run(self._settings.test_op(name))

    def unlock(self, name: str) -> bool:
        """Releases this ID's hold. True if it held the lock, false if nobody
        did (it had expired); NotOwner if another ID holds it."""
        return self._run(self._settings.unlock_op(name))

    def _acquire(self, op: Op[int]) -> int:
        try:
            return self._run(op)
        except UnsupportedFeature:
            # An older server took the shared request as an exclusive one.
            self._release_quietly(op.name)
            raise

    def _release_quietly(self, name: str) -> None:
        try:
            self.unlock(name)
        except DLMError:
            pass  # the hold ends with its TTL anyway

    # -- data items ---------------------------------------------------------

    def put(self, name: str, value: Union[bytes, str], ttl: float) -> None:
        """Stores ``value`` (text as UTF-8, then through the codec) as the
        data item ``name`` for ``ttl`` seconds, creating it or replacing this
        ID's value. NotOwner if another ID owns it, MemoryGuard if the
        server's memory guard refuses it."""
        self._run(self._settings.put_op(name, value, ttl))

    def get(self, name: str) -> Optional[bytes]:
        """The data item's value (through the codec), or None if there is none."""
        return self._run(self._settings.get_op(name))

    def get_text(self, name: str) -> Optional[str]:
        """:meth:`get`, decoded as UTF-8."""
        value = self.get(name)
        return None if value is None else value.decode("utf-8")

    def erase(self, name: str) -> bool:
        """Removes the data item: True if it was there, False if not."""
        return self._run(self._settings.erase_op(name))

    # -- the server ---------------------------------------------------------

    def version(self) -> str:
        """The server's version, e.g. ``JackrabbitDLM/0.1.0``."""
        return self._run(self._settings.version_op())

    def is_dlm(self) -> bool:
        """Whether a Jackrabbit DLM server answers; any failure is False."""
        try:
            return "JackrabbitDLM" in self.version()
        except DLMError:
            return False

    def stats(self) -> Dict[str, Union[int, float]]:
        """The server's counters by name (the ``Stats`` extension)."""
        return self._run(self._settings.stats_op())

    # -- the connection -----------------------------------------------------

    def _run(self, op: Op[T]) -> T:
        with self._mutex:
            return op.finish(self._round_trip(op))

    def _exchange(self, action: str, name: str, line: bytes) -> protocol.Reply:
        """Sends a ready-made request line and returns its reply (for the
        DLMLocker layer, which builds its own lines)."""
        with self._mutex:
            return self._round_trip(Op(action, name, line, 0.0, _same))

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _round_trip(self, op: Op[Any]) -> protocol.Reply:
        settings = self._settings
        connected = self._connection is not None and self._connection.usable()
        steps = round_trip(op, settings.endpoints, self._index, connected, settings.timeout)
        result: Any = None
        error: Optional[BaseException] = None
        while True:
            try:
                step, arg = steps.send(result) if error is None else steps.throw(error)
            except StopIteration as done:
                reply, self._index = done.value
                return reply  # type: ignore[no-any-return]
            result, error = None, None
            try:
                if step == "connect":
                    self._drop()
                    self._connection = _Connection(settings.endpoints[arg], settings.timeout)
                elif step == "send":
                    assert self._connection is not None
                    self._connection.send(arg, settings.timeout)
                else:
                    assert self._connection is not None
                    result = self._connection.read_line(arg)
            except (OSError, EOFError) as e:
                self._drop()
                error = e


class Hold:
    """A held lock: its ``name``, fencing ``token``, ``ttl`` and ``mode``.

    As a context manager it releases the lock on exit (also on an
    exception). An auto-renewing hold (``auto_renew=True``) renews itself
    every ``ttl/3`` seconds on a thread with a connection of its own, and
    counts as :attr:`lost` when a renewal is refused, when the server grants
    a new hold instead (it forgot the old one), or when renewals failed on
    the network for longer than the TTL.
    """

    def __init__(self, client: Client, name: str, token: int, ttl: float, mode: str, limit: Optional[int]):
        self.client = client
        self.name = name
        self.token = token
        self.ttl = ttl
        self.mode = mode
        self.limit = limit
        self.lost_reason: Optional[str] = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: Optional[threading.Thread] = None
        self._on_lost: Optional[LostCallback] = None

    def __repr__(self) -> str:
        return f"Hold({self.name!r}, token={self.token}, mode={self.mode!r}, lost={self.lost})"

    @property
    def lost(self) -> bool:
        """Whether this hold is known to be gone (see the class documentation)."""
        return self._lost.is_set()

    def wait_lost(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the hold is lost or ``timeout`` passes; returns :attr:`lost`."""
        return self._lost.wait(timeout)

    def renew(self) -> None:
        """Renews the hold now (TTL reset, same token). Raises NotOwner, and
        marks the hold lost, if it is gone."""
        token = self.client._run(self.client._settings.lock_op(self.name, self.ttl, 0, self.mode, self.limit))
        if token != self.token:
            self._mark_lost("the server granted a new hold: it had forgotten the old one")
            raise NotOwner("Lock", self.name, "NotOwner")

    def release(self) -> bool:
        """Stops renewing and releases the lock: True if this ID still held it."""
        self._stop_renewing()
        return self.client.unlock(self.name)

    def __enter__(self) -> "Hold":
        return self

    def __exit__(
        self, kind: Optional[Type[BaseException]], error: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self._stop_renewing()
        try:
            self.client.unlock(self.name)
        except DLMError:
            if kind is None and not self.lost:
                raise

    def _mark_lost(self, reason: str) -> None:
        if self._lost.is_set():
            return
        self.lost_reason = reason
        self._lost.set()
        if self._on_lost is not None:
            self._on_lost(self)

    def _start_renewing(self, on_lost: Optional[LostCallback]) -> None:
        self._on_lost = on_lost
        started = time.monotonic()
        self._renewer = threading.Thread(
            target=self._renew_loop, args=(started,), name=f"dlm-renew-{self.name}", daemon=True
        )
        self._renewer.start()

    def _stop_renewing(self) -> None:
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join()

    def _renew_loop(self, started: float) -> None:
        clock = RenewalClock(self.token, self.ttl, started)
        with self.client.clone() as renewer:
            op = renewer._settings.lock_op(self.name, self.ttl, 0, self.mode, self.limit)
            while not self._stop.wait(clock.delay(time.monotonic())):
                asked_at = time.monotonic()
                outcome: Union[int, DLMError]
                try:
                    outcome = renewer._run(op)
                except DLMError as e:
                    outcome = e
                if not clock.record(outcome, asked_at):
                    self._mark_lost(clock.lost_reason)
                    return

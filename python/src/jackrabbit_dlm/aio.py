"""The asyncio client: the surface of :mod:`jackrabbit_dlm.client`, awaited.

>>> async def main() -> None:                                   # doctest: +SKIP
...     client = AsyncClient("127.0.0.1:37373")
...     async with await client.lock("jobs", ttl=30, wait=10) as hold:
...         print("fencing token", hold.token)
...     await client.close()

It builds the same request lines, reads the same replies and follows the
same reconnect and resend rules as the blocking client (they share
``_core``); only the I/O differs. Coroutines of one client take turns on its
connection.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple, Type, TypeVar, Union

from . import protocol
from ._core import EXCLUSIVE, SHARED, LockState, Op, RenewalClock, Settings, round_trip
from .codec import Codec
from .errors import DLMError, NotOwner, UnsupportedFeature
from .protocol import EndpointLike

T = TypeVar("T")

#: Called once, with the hold, when an auto-renewed hold is lost; may be a
#: coroutine function.
LostCallback = Callable[["AsyncHold"], Union[Awaitable[object], object]]


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, endpoint: Tuple[str, int], timeout: float) -> "_Connection":
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*endpoint), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("connecting timed out") from None
        return cls(reader, writer)

    def usable(self) -> bool:
        """Whether the server has not closed the connection (noticed by the
        event loop while the connection sat idle)."""
        return not (self.reader.at_eof() or self.writer.is_closing())

    async def send(self, line: bytes, timeout: float) -> None:
        self.writer.write(line)
        try:
            await asyncio.wait_for(self.writer.drain(), timeout)
        except asyncio.TimeoutError:
            raise OSError("sending timed out") from None

    async def read_line(self, timeout: float) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.readuntil(b"\n"), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("timed out") from None
        except asyncio.IncompleteReadError:
            raise EOFError("the server closed the connection before replying") from None
        except asyncio.LimitOverrunError as e:
            raise OSError(f"reply line too long: {e}") from None

    def close(self) -> None:
        self.writer.close()


class AsyncClient:
    """The asyncio twin of :class:`jackrabbit_dlm.Client`: the same
    arguments, the same methods as coroutines."""

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
        self._mutex: Optional[asyncio.Lock] = None
        self._connection: Optional[_Connection] = None
        self._index = 0

    @property
    def id(self) -> str:
        """The ID this client acts as."""
        return self._settings.id

    @property
    def endpoints(self) -> List[Tuple[str, int]]:
        """The servers this client talks to, as ``(host, port)``."""
        return list(self._settings.endpoints)

    def __repr__(self) -> str:
        return f"AsyncClient({self.endpoints!r}, id={self.id!r}, encoding={self._settings.encoding!r})"

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the connection (the next call opens a new one)."""
        async with self._lock():
            self._drop()

    def clone(self) -> "AsyncClient":
        """Another client with this one's settings and ID, on its own connection."""
        return AsyncClient(self._settings.endpoints, **self._settings.copy_args())

    # -- locks --------------------------------------------------------------

    async def lock(
        self,
        name: str,
        ttl: float = 30,
        wait: float = 0,
        *,
        mode: str = EXCLUSIVE,
        limit: Optional[int] = None,
        auto_renew: bool = False,
        on_lost: Optional[LostCallback] = None,
    ) -> "AsyncHold":
        """As :meth:`jackrabbit_dlm.Client.lock`; the hold renews itself in a
        task with ``auto_renew``. ``async with await client.lock(...)``."""
        op = self._settings.lock_op(name, ttl, wait, mode, limit)
        try:
            token = await self._run(op)
        except UnsupportedFeature:
            try:
                await self.unlock(name)
            except DLMError:
                pass
            raise
        hold = AsyncHold(self, name, token, ttl, mode, limit)
        if auto_renew:
            hold._start_renewing(on_lost)
        return hold

    async def try_lock(
        self, name: str, ttl: float = 30, *, mode: str = EXCLUSIVE, limit: Optional[int] = None
    ) -> "Optional[AsyncHold]":
        """One request; ``None`` if another ID holds the lock."""
        try:
            return await self.lock(name, ttl, mode=mode, limit=limit)
        except NotOwner:
            return None

    async def semaphore(
        self, name: str, limit: int, ttl: float = 30, wait: float = 0, **kwargs: Any
    ) -> "AsyncHold":
        """One of ``limit`` shared holds of ``name``."""
        return await self.lock(name, ttl, wait, mode=SHARED, limit=limit, **kwargs)

    async def test_lock(self, name: str) -> LockState:
        return await self._run(self._settings.test_op(name))

    async def unlock(self, name: str) -> bool:
        return await self._run(self._settings.unlock_op(name))

    # -- data items ---------------------------------------------------------

    async def put(self, name: str, value: Union[bytes, str], ttl: float) -> None:
        await self._run(self._settings.put_op(name, value, ttl))

    async def get(self, name: str) -> Optional[bytes]:
        return await self._run(self._settings.get_op(name))

    async def get_text(self, name: str) -> Optional[str]:
        value = await self.get(name)
        return None if value is None else value.decode("utf-8")

    async def erase(self, name: str) -> bool:
        return await self._run(self._settings.erase_op(name))

    # -- the server ---------------------------------------------------------

    async def version(self) -> str:
        return await self._run(self._settings.version_op())

    async def is_dlm(self) -> bool:
        try:
            return "JackrabbitDLM" in await self.version()
        except DLMError:
            return False

    async def stats(self) -> Dict[str, Union[int, float]]:
        return await self._run(self._settings.stats_op())

    # -- the connection -----------------------------------------------------

    def _lock(self) -> asyncio.Lock:
        # Made on first use, inside the event loop (3.9 binds locks to the
        # loop that is current when they are made).
        if self._mutex is None:
            self._mutex = asyncio.Lock()
        return self._mutex

    async def _run(self, op: Op[T]) -> T:
        async with self._lock():
            return op.finish(await self._round_trip(op))

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def _round_trip(self, op: Op[Any]) -> protocol.Reply:
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
                    self._connection = await _Connection.open(settings.endpoints[arg], settings.timeout)
                elif step == "send":
                    assert self._connection is not None
                    await self._connection.send(arg, settings.timeout)
                else:
                    assert self._connection is not None
                    result = await self._connection.read_line(arg)
            except (OSError, EOFError) as e:
                self._drop()
                error = e


class AsyncHold:
    """The asyncio twin of :class:`jackrabbit_dlm.Hold`."""

    def __init__(
        self, client: AsyncClient, name: str, token: int, ttl: float, mode: str, limit: Optional[int]
    ):
        self.client = client
        self.name = name
        self.token = token
        self.ttl = ttl
        self.mode = mode
        self.limit = limit
        self.lost_reason: Optional[str] = None
        self._lost = asyncio.Event()
        self._renewer: Optional["asyncio.Task[None]"] = None
        self._on_lost: Optional[LostCallback] = None

    def __repr__(self) -> str:
        return f"AsyncHold({self.name!r}, token={self.token}, mode={self.mode!r}, lost={self.lost})"

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    async def wait_lost(self, timeout: Optional[float] = None) -> bool:
        """Waits until the hold is lost or ``timeout`` passes; returns :attr:`lost`."""
        try:
            await asyncio.wait_for(self._lost.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self.lost

    async def renew(self) -> None:
        token = await self.client._run(
            self.client._settings.lock_op(self.name, self.ttl, 0, self.mode, self.limit)
        )
        if token != self.token:
            await self._mark_lost("the server granted a new hold: it had forgotten the old one")
            raise NotOwner("Lock", self.name, "NotOwner")

    async def release(self) -> bool:
        await self._stop_renewing()
        return await self.client.unlock(self.name)

    async def __aenter__(self) -> "AsyncHold":
        return self

    async def __aexit__(
        self, kind: Optional[Type[BaseException]], error: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self._stop_renewing()
        try:
            await self.client.unlock(self.name)
        except DLMError:
            if kind is None and not self.lost:
                raise

    async def _mark_lost(self, reason: str) -> None:
        if self._lost.is_set():
            return
        self.lost_reason = reason
        self._lost.set()
        if self._on_lost is not None:
            outcome = self._on_lost(self)
            if asyncio.iscoroutine(outcome) or isinstance(outcome, asyncio.Future):
                await outcome

    def _start_renewing(self, on_lost: Optional[LostCallback]) -> None:
        self._on_lost = on_lost
        self._renewer = asyncio.ensure_future(self._renew_loop(time.monotonic()))

    async def _stop_renewing(self) -> None:
        task, self._renewer = self._renewer, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _renew_loop(self, started: float) -> None:
        clock = RenewalClock(self.token, self.ttl, started)
        renewer = self.client.clone()
        op = renewer._settings.lock_op(self.name, self.ttl, 0, self.mode, self.limit)
        try:
            while True:
                await asyncio.sleep(clock.delay(time.monotonic()))
                asked_at = time.monotonic()
                outcome: Union[int, DLMError]
                try:
                    outcome = await renewer._run(op)
                except DLMError as e:
                    outcome = e
                if not clock.record(outcome, asked_at):
                    await self._mark_lost(clock.lost_reason)
                    return
        finally:
            await renewer.close()

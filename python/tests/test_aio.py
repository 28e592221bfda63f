"""The asyncio client against the real server: the same surface as the
blocking one, run with ``asyncio.run`` (no plugin needed)."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, List, TypeVar

import pytest
from conftest import Server, free_port
from helpers import expiry_of, parked

from jackrabbit_dlm import Base64Codec, ConnectionFailed, IdentityCodec, LockStatus, NotOwner
from jackrabbit_dlm.aio import AsyncClient, AsyncHold

MINUTE = 60
T = TypeVar("T")


def run(test: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(test(), 30))


def test_lock_rows_and_the_async_with(server: Server, encoding: str) -> None:
    async def test() -> None:
        a = AsyncClient(server.endpoint, id="a", encoding=encoding)
        b = AsyncClient(server.endpoint, id="b", encoding=encoding)
        async with await a.lock("jobs", ttl=30, wait=10) as hold:
            assert isinstance(hold, AsyncHold) and hold.token > 0
            assert (await a.lock("jobs", 30)).token == hold.token
            assert await b.try_lock("jobs") is None
            with pytest.raises(NotOwner):
                await b.unlock("jobs")
            assert await b.test_lock("jobs") == LockStatus.OTHER
            assert (await a.test_lock("jobs")).owned
        assert (await b.test_lock("jobs")).free
        assert await a.unlock("jobs") is False
        await a.close()
        await b.close()

    run(test)


def test_data_rows_and_codecs(server: Server, encoding: str) -> None:
    async def test() -> None:
        a = AsyncClient(server.endpoint, id="a", encoding=encoding, codec=Base64Codec())
        b = AsyncClient(server.endpoint, id="b", encoding=encoding)
        assert await a.get("d") is None
        assert await a.erase("d") is False
        await a.put("d", bytes(range(256)), MINUTE)
        assert await a.get("d") == bytes(range(256))
        with pytest.raises(NotOwner):
            await b.put("d", "x", MINUTE)
        raw = AsyncClient(server.endpoint, id="a", codec=IdentityCodec())
        assert await raw.get_text("d") == Base64Codec().encode(bytes(range(256)))
        assert await a.erase("d") is True
        for client in (a, b, raw):
            await client.close()

    run(test)


def test_version_and_stats_over_one_connection(server: Server) -> None:
    async def test() -> None:
        async with AsyncClient(server.endpoint) as a:
            assert await a.is_dlm()
            assert (await a.version()).startswith("JackrabbitDLM/")
            await asyncio.gather(*(a.put(f"k{i}", str(i), MINUTE) for i in range(20)))
            assert [await a.get_text(f"k{i}") for i in range(20)] == [str(i) for i in range(20)]
            stats = await a.stats()
            assert stats["PutNew"] == 20 and stats["Connections"] == 1

    run(test)


def test_a_waiter_is_granted_when_the_holder_releases(server: Server) -> None:
    async def test() -> None:
        holder = AsyncClient(server.endpoint, id="holder")
        first = await holder.lock("q", MINUTE)
        waiter = AsyncClient(server.endpoint, id="waiter")
        waiting = asyncio.ensure_future(waiter.lock("q", MINUTE, wait=MINUTE))
        await asyncio.get_running_loop().run_in_executor(None, parked, server, 1)
        await first.release()
        granted = await waiting
        assert granted.token > first.token
        with pytest.raises(NotOwner):
            await AsyncClient(server.endpoint, id="late").lock("q", MINUTE, wait=0.1)
        await holder.close()
        await waiter.close()

    run(test)


def test_an_auto_renewed_hold_and_its_loss(server: Server) -> None:
    told: List[Any] = []

    async def test() -> None:
        a = AsyncClient(server.endpoint, id="a")
        hold = await a.lock("r", 0.6, auto_renew=True, on_lost=lambda h: told.append(h.lost_reason))
        witness = expiry_of(server, 0.6)
        await asyncio.get_running_loop().run_in_executor(None, witness)
        assert await AsyncClient(server.endpoint, id="b").try_lock("r") is None
        assert not hold.lost
        server.restart()
        assert await hold.wait_lost(10)
        assert told and "new hold" in told[0]
        await hold.release()
        await a.close()

    run(test)


def test_endpoints_and_connection_failures(server: Server) -> None:
    async def test() -> None:
        dead = f"127.0.0.1:{free_port()}"
        with pytest.raises(ConnectionFailed):
            await AsyncClient(dead).version()
        a = AsyncClient([dead, server.endpoint], id="a")
        await a.lock("c", MINUTE)
        server.restart()
        assert (await a.test_lock("c")).free, "reconnected to the new server"
        await a.close()

    run(test)

"""Helpers shared by the tests that talk to a server."""

from __future__ import annotations

import itertools
from typing import Callable

from conftest import Server, wait_until

from jackrabbit_dlm import Client

_witnesses = itertools.count()


def expiry_of(server: Server, ttl: float) -> Callable[[], None]:
    """Starts a witness lock with ``ttl`` now. The function returned waits
    until the witness has expired, and so has anything given the same TTL
    before this call: no guessing how long a TTL takes to run out."""
    n = next(_witnesses)
    witness = Client(server.endpoint, id=f"witness-{n}")
    name = f"witness-{n}"
    witness.lock(name, ttl)

    def wait() -> None:
        wait_until(lambda: witness.test_lock(name).free, f"a {ttl} s TTL to run out")
        witness.close()

    return wait


def parked(server: Server, count: int) -> None:
    """Waits until ``count`` requests have been parked in Wait queues."""
    probe = Client(server.endpoint)
    wait_until(lambda: probe.stats()["Waited"] >= count, f"{count} parked waiters")
    probe.close()

"""Starts the real server binary for the tests: ``jackrabbit-dlm 127.0.0.1 0
--log-dir <tmp>``, port read from its first stdout line.

The binary is ``$JACKRABBIT_DLM_BIN``, else ``target/debug/jackrabbit-dlm``
of this repository (built with ``cargo build --bin jackrabbit-dlm`` if it is
missing). Without a binary the tests fail; they never skip for that.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def server_binary() -> Path:
    given = os.environ.get("JACKRABBIT_DLM_BIN")
    if given:
        return Path(given)
    built = REPO / "target" / "debug" / "jackrabbit-dlm"
    if not built.exists():
        subprocess.run(["cargo", "build", "--bin", "jackrabbit-dlm"], cwd=REPO, check=True)
    return built


def dlm_binary() -> Optional[Path]:
    """The Rust ``dlm`` tool beside the server, if it was built."""
    path = server_binary().with_name("dlm")
    return path if path.exists() else None


def wait_until(condition: Callable[[], Optional[T]], what: str, timeout: float = 10.0) -> T:
    """Polls ``condition`` until it returns something truthy, and returns it;
    fails the test if that takes longer than ``timeout``."""
    give_up = time.monotonic() + timeout
    while True:
        outcome = condition()
        if outcome:
            return outcome
        if time.monotonic() > give_up:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


class Server:
    """One ``jackrabbit-dlm`` process on 127.0.0.1 and a port of its own."""

    def __init__(self, args: Sequence[str] = (), port: int = 0):
        self.args = list(args)
        self.dir = tempfile.mkdtemp(prefix="jdlm-py-")
        self.process = subprocess.Popen(
            [str(server_binary()), "127.0.0.1", str(port), "--log-dir", self.dir, *self.args],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline().decode()
        match = re.search(r"listening on (\S+):(\d+)\s*$", first)
        if not match:
            self.stop()
            raise RuntimeError(f"no address in the server's first line {first!r}")
        self.host, self.port = match.group(1), int(match.group(2))

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def restart(self) -> None:
        """A fresh server on the same port (it starts empty)."""
        self.stop()
        self.__init__(self.args, self.port)  # type: ignore[misc]

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Starts servers with extra options; all are stopped after the test."""
    started: List[Server] = []

    def start(*args: str) -> Server:
        server = Server(args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.cleanup()


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


@pytest.fixture(params=["plain", "table"])
def encoding(request: pytest.FixtureRequest) -> str:
    """Runs a test once per line encoding."""
    return str(request.param)


def free_port() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def help_text() -> str:
    return subprocess.run([str(server_binary()), "--help"], capture_output=True, text=True).stdout


def python_cli(*args: str, stdin: bytes = b"", env: Optional[dict] = None) -> "subprocess.CompletedProcess[bytes]":  # type: ignore[type-arg]
    """``python -m jackrabbit_dlm ARGS``."""
    return subprocess.run(
        [sys.executable, "-m", "jackrabbit_dlm", *args], input=stdin, capture_output=True, env=env, timeout=60
    )

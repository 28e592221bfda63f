"""Lock/unlock pairs per second from one Python process.

Compares, side by side in one run (alternating rounds, medians quoted):

* ``compat``: ``jackrabbit_dlm.compat.Locker`` (DLMLocker's API) over its one
  persistent connection;
* ``per-request``: the same requests with a new TCP connection for each, the
  way upstream's DLMLocker talks (connect, write a line, read a line, close);
* ``client``: the native ``jackrabbit_dlm.Client`` over one connection.

All send table-encoded lines, as the newest DLMLocker does. The server's CPU
time per pair comes from ``/proc/PID/stat`` (Linux).

    cargo build --release
    python python/bench/lock_unlock.py --seconds 3 --rounds 5 [--threads 8]

``--threads N`` runs N threads in the process, each with its own locker,
ID and lock name (DLMLocker is not thread-safe, so that is how a threaded
program uses it).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from jackrabbit_dlm import Client, TABLE
from jackrabbit_dlm.compat import Locker
from jackrabbit_dlm.protocol import request_line

REPO = Path(__file__).resolve().parents[2]


def start_server(binary: Path) -> Tuple["subprocess.Popen[bytes]", int]:
    process = subprocess.Popen(
        [str(binary), "127.0.0.1", "0", "--log-dir", tempfile.mkdtemp(prefix="jdlm-bench-")],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    first = process.stdout.readline().decode()
    match = re.search(r":(\d+)\s*$", first)
    if not match:
        process.kill()
        raise SystemExit(f"no port in the server's first line {first!r}")
    return process, int(match.group(1))


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_request_pair(port: int, name: str, id: str) -> Callable[[], None]:
    """A Lock and an Unlock, each on a connection of its own, as upstream."""
    lock = request_line({"ID": id, "FileName": name, "Action": "Lock", "Expire": "10"}, TABLE)
    unlock = request_line({"ID": id, "FileName": name, "Action": "Unlock", "Expire": "0"}, TABLE)

    def one(line: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            f = s.makefile("rwb")
            f.write(line)
            f.flush()
            if not f.readline():
                raise SystemExit("the server closed without replying")
            f.close()

    def pair() -> None:
        one(lock)
        one(unlock)

    return pair


def compat_pair(port: int, name: str, id: str) -> Callable[[], None]:
    locker = Locker(name, Retry=0, RetrySleep=0, ID=id, Port=port)

    def pair() -> None:
        if locker.Lock(10) != "locked" or locker.Unlock() != "unlocked":
            raise SystemExit("unexpected answer")

    return pair


def client_pair(port: int, name: str, id: str) -> Callable[[], None]:
    client = Client(("127.0.0.1", port), id=id, encoding=TABLE)

    def pair() -> None:
        client.lock(name, 10)
        client.unlock(name)

    return pair


def measure(pairs: List[Callable[[], None]], seconds: float, pid: int) -> Tuple[float, float]:
    """Pairs per second of ``pairs`` run side by side, one thread each, and
    the server's CPU microseconds per pair."""
    for pair in pairs:
        pair()  # connect and warm up outside the clock
    counts = [0] * len(pairs)
    start = threading.Barrier(len(pairs) + 1)
    deadline = [0.0]

    def work(i: int) -> None:
        pair = pairs[i]
        start.wait()
        while time.perf_counter() < deadline[0]:
            for _ in range(20):
                pair()
            counts[i] += 20

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pairs))]
    for t in threads:
        t.start()
    cpu0, began = server_cpu(pid), time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed, total = time.perf_counter() - began, sum(counts)
    return total / elapsed, (server_cpu(pid) - cpu0) / total * 1e6


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", type=Path, default=REPO / "target" / "release" / "jackrabbit-dlm")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of every client")
    parser.add_argument("--threads", type=int, default=1, help="threads, each with its own locker and lock name")
    args = parser.parse_args(argv)
    if not args.server.exists():
        raise SystemExit(f"{args.server} is missing: cargo build --release")
    process, port = start_server(args.server)
    clients: Dict[str, Callable[[int, str, str], Callable[[], None]]] = {
        "compat": compat_pair,
        "per-request": per_request_pair,
        "client": client_pair,
    }
    results: Dict[str, List[Tuple[float, float]]] = {k: [] for k in clients}
    try:
        pairs = {
            k: [make(port, f"bench-{k}-{t}", f"bench-{k}-id-{t}") for t in range(args.threads)]
            for k, make in clients.items()
        }
        for round in range(1, args.rounds + 1):
            for kind, pair in pairs.items():
                rate, cpu = measure(pair, args.seconds, process.pid)
                results[kind].append((rate, cpu))
                print(f"round {round} {kind:12} {rate:10.0f} pairs/s  server {cpu:6.1f} µs CPU/pair", flush=True)
    finally:
        process.kill()
        process.wait()
    print()
    print(f"Python {sys.version.split()[0]}, {args.threads} thread(s), {args.rounds} rounds of {args.seconds:g} s, medians:")
    print("| client | pairs/s | server CPU per pair |")
    print("|---|---:|---:|")
    medians = {k: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v)) for k, v in results.items()}
    for kind, (rate, cpu) in medians.items():
        print(f"| {kind} | {rate:,.0f} | {cpu:.1f} µs |")
    ratios = [a[0] / b[0] for a, b in zip(results["compat"], results["per-request"])]
    print(f"\ncompat / per-request, pairs/s: median {statistics.median(ratios):.2f} "
          f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Resident memory of the server: idle, after 1M locks, after 1M data items.

Usage: scripts/memory.py [PATH-TO-jackrabbit-dlm] [COUNT]
(default: target/release/jackrabbit-dlm, 1000000). Build with
`cargo build --release` first. Prints bytes per entry and the overhead per
entry beyond the names, IDs and values themselves.
"""
import os
import socket
import subprocess
import sys
import tempfile

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/release/jackrabbit-dlm"
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
OWNER = "worker-0001"
VALUE = "x" * 64


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def fill(sock, template):
    batch = 10_000
    for start in range(0, COUNT, batch):
        sock.sendall("".join(template % i for i in range(start, min(COUNT, start + batch))).encode())
        want = min(COUNT, start + batch) - start
        got = 0
        while got < want:
            data = sock.recv(1 << 20)
            if not data:
                raise RuntimeError("server closed the connection")
            if b"NO" in data or b"BadPayload" in data:
                raise RuntimeError("server refused: %r" % data[:200])
            got += data.count(b"\n")


def main():
    logdir = tempfile.mkdtemp()
    server = subprocess.Popen([BINARY, "127.0.0.1", "0", "--log-dir", logdir],
                              stdout=subprocess.PIPE, text=True)
    try:
        addr = server.stdout.readline().split()[-1]
        host, port = addr.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
        idle = rss(server.pid)
        lock_line = '{"ID":"%s","FileName":"lock-%%07d","Action":"Lock","Expire":"3600"}\n' % OWNER
        fill(sock, lock_line)
        after_locks = rss(server.pid)
        data_line = ('{"ID":"%s","FileName":"data-%%07d","Action":"Put","Expire":"3600","DataStore":"%s"}\n'
                     % (OWNER, VALUE))
        fill(sock, data_line)
        after_data = rss(server.pid)
        name_len = len("lock-0000000")
        per_lock = (after_locks - idle) / COUNT
        per_item = (after_data - after_locks) / COUNT
        print(f"idle RSS: {idle / 2**20:.1f} MiB")
        print(f"{COUNT} locks: {per_lock:.1f} bytes/lock, "
              f"{per_lock - name_len - len(OWNER):.1f} beyond name and ID")
        print(f"{COUNT} data items of {len(VALUE)} bytes: {per_item:.1f} bytes/item, "
              f"{per_item - name_len - len(OWNER) - len(VALUE):.1f} beyond name, ID and value")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

"""What the cluster scripts ask the members: their Stats, and waiting for a
condition with a bounded wait. Imported by rolling-restart.sh,
replace-member.sh and cluster-bench.sh (python3, standard library only)."""

import json
import socket
import sys
import time


def stats(host, port, who="script"):
    """The member's Stats reply as a dict ({} if it does not answer)."""
    line = json.dumps({"Action": "Stats", "ID": who, "FileName": who}) + "\n"
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(line.encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)
    except (OSError, ValueError):
        return {}


def until(check, what, limit=30, on_timeout=None, script="script"):
    """check()'s first true value, asked every 50 ms for `limit` seconds;
    past that, calls on_timeout() (to show the members' logs) and exits."""
    deadline = time.time() + limit
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    if on_timeout:
        on_timeout()
    sys.exit(f"{script}: no {what} within {limit} s")


def show_logs(dirs):
    """The tail of each member's stderr file, `dirs` mapping a member's
    number to its directory."""
    for n, d in dirs.items():
        path = f"{d}/stderr"
        try:
            with open(path) as f:
                print(f"member {n}:", f.read()[-2000:], file=sys.stderr)
        except OSError:
            pass


def agreed_leader(host, ports, who="script"):
    """The node ID every member at `ports` names as leader, or 0."""
    leaders = [stats(host, p, who).get("Leader", 0) for p in ports]
    return leaders[0] if leaders[0] and len(set(leaders)) == 1 else 0

"""``python -m jackrabbit_dlm``: the subcommands, output and exit statuses
of the Rust ``dlm``, against the real server, and interplay with ``dlm``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import Server, dlm_binary, free_port, python_cli

from jackrabbit_dlm import Client, IdentityCodec, TableCodec


def cli(server: Server, *args: str, stdin: bytes = b"") -> "subprocess.CompletedProcess[bytes]":
    return python_cli("--port", str(server.port), *args, stdin=stdin)


def test_lock_test_unlock_and_their_exit_statuses(server: Server) -> None:
    done = cli(server, "lock", "jobs", "--expire", "30", "--id", "w1")
    assert done.returncode == 0
    assert done.stdout.decode().startswith("Locked jobs (token ") and "ID w1)" in done.stdout.decode()
    assert cli(server, "test", "jobs", "--id", "w1").stdout == b'"jobs" is locked by this ID\n'
    other = cli(server, "--id", "w2", "test", "jobs")
    assert (other.returncode, other.stderr) == (1, b'dlm: "jobs" is locked by another ID\n')
    refused = cli(server, "lock", "jobs", "--expire", "30", "--id", "w2", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout) == {"Status": "NotOwner", "Name": "jobs"}
    assert refused.stderr == b'dlm: Lock "jobs": owned by another ID (NotOwner)\n'
    assert cli(server, "unlock", "jobs", "--id", "w2").returncode == 1
    assert cli(server, "unlock", "jobs", "--id", "w1").stdout == b"Unlocked jobs\n"
    again = cli(server, "unlock", "jobs", "--id", "w1", "--json")
    assert again.returncode == 1
    assert json.loads(again.stdout) == {"Status": "Unlocked", "Name": "jobs", "Released": False}
    assert cli(server, "test", "jobs").returncode == 1


def test_put_and_get_byte_for_byte(server: Server) -> None:
    value = "line one\nline two é\n".encode()
    assert cli(server, "put", "cfg", "-", "--expire", "60", "--id", "a", stdin=value).returncode == 0
    got = cli(server, "get", "cfg", "--id", "a")
    assert (got.returncode, got.stdout) == (0, value)
    assert json.loads(cli(server, "--json", "get", "cfg", "--id", "a").stdout)["Value"] == value.decode()
    # Stored through the table codec, as dlm and the Python client store it.
    assert Client(server.endpoint, id="a", codec=TableCodec()).get("cfg") == value
    assert cli(server, "put", "raw", "-", "--expire", "60", "--id", "a", "--codec", "identity", stdin=value).returncode == 0
    assert Client(server.endpoint, id="a", codec=IdentityCodec()).get("raw") == value
    assert cli(server, "erase", "cfg", "--id", "a").stdout == b"Erased cfg\n"
    absent = cli(server, "get", "cfg", "--id", "a")
    assert (absent.returncode, absent.stderr) == (1, b'dlm: "cfg" has no data item\n')
    assert cli(server, "put", "cfg", "-", "--expire", "1", stdin=b"\xff").returncode == 2


def test_version_and_stats(server: Server) -> None:
    assert cli(server, "version").stdout == b"JackrabbitDLM/0.1.0\n"
    stats = json.loads(cli(server, "stats", "--json").stdout)
    assert stats["Status"] == "Stats" and stats["Connections"] >= 1
    lines = cli(server, "stats").stdout.decode().splitlines()
    assert lines == sorted(lines) and any(line.startswith("Connections: ") for line in lines)


def test_usage_connection_and_malformed_exit_statuses(start_server: "object") -> None:
    server = start_server("--max-ttl", "100")  # type: ignore[operator]
    assert python_cli().returncode == 2
    assert cli(server, "lock", "jobs").returncode == 2, "--expire is required"
    assert cli(server, "lock", "jobs", "--expire", "0").returncode == 2
    assert cli(server, "lock", "jobs", "--expire", "101").returncode == 2, "BadPayload is a usage error"
    down = python_cli("--port", str(free_port()), "version")
    assert down.returncode == 3 and down.stderr.startswith(b"dlm: connect to 127.0.0.1:")
    assert python_cli("--help").returncode == 0


def test_run_holds_the_lock_around_the_command(server: Server) -> None:
    script = f"echo token=$DLM_TOKEN; '{sys.executable}' -m jackrabbit_dlm --port {server.port} test job --id runner; exit 7"
    done = python_cli("--port", str(server.port), "--id", "runner", "run", "job", "--expire", "30", "--", "sh", "-c", script)
    assert done.returncode == 7, done.stderr
    out = done.stdout.decode()
    assert out.startswith("token=") and int(out.split("=")[1].split()[0]) > 0
    assert '"job" is locked by this ID' in out
    assert Client(server.endpoint).test_lock("job").free, "released after the command"


def test_run_exit_statuses(server: Server) -> None:
    assert cli(server, "run", "job", "--expire", "5", "--", "no-such-command-here").returncode == 127
    assert cli(server, "run", "job", "--expire", "5").returncode == 2
    Client(server.endpoint, id="other").lock("job", 60)
    busy = cli(server, "run", "job", "--expire", "5", "--wait", "0.1", "--", "true")
    assert busy.returncode == 1
    killed = cli(server, "run", "free", "--expire", "5", "--", "sh", "-c", "kill -9 $$")
    assert killed.returncode == 128 + 9


@pytest.mark.skipif(dlm_binary() is None, reason="the Rust dlm binary is not built (cargo build --bin dlm)")
def test_the_rust_dlm_reads_what_the_python_one_wrote(server: Server) -> None:
    assert cli(server, "put", "shared", "from python", "--expire", "60", "--id", "a").returncode == 0
    rust = subprocess.run(
        [str(dlm_binary()), "--port", str(server.port), "--id", "a", "get", "shared"], capture_output=True
    )
    assert rust.stdout == b"from python"
    rust = subprocess.run(
        [str(dlm_binary()), "--port", str(server.port), "--id", "b", "--json", "test", "shared"], capture_output=True
    )
    mine = cli(server, "--id", "b", "--json", "test", "shared")
    assert (rust.returncode, rust.stdout) == (mine.returncode, mine.stdout)

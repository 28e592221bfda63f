"""``python -m jackrabbit_dlm``: the ``dlm`` command line of the Rust
package, in Python, with the same subcommands, options, output and exit
statuses. Values go through the table codec by default (``--codec
table|identity|base64``), as ``dlm`` and the Python client store them, so
the tools read each other's items.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import Any, Dict, List, NoReturn, Optional, Sequence

from . import __version__
from .client import Client, Hold
from .codec import Base64Codec, Codec, IdentityCodec, TableCodec
from .errors import BadPayload, ConnectionFailed, DLMError, NotOwner, Refused, quoted
from .protocol import DEFAULT_PORT, PLAIN, TABLE

SUCCESS, REFUSED, USAGE, CONNECTION, SERVER = 0, 1, 2, 3, 4

EXIT_STATUS_HELP = """\
Exit status:
  0  success
  1  the lock or item is owned by another ID, or absent
  2  usage error (also a request the server rejects as malformed)
  3  the server cannot be reached or the connection broke
  4  the server refused for another reason (memory guard, unknown action)
     or did not answer in the protocol
`run` exits with COMMAND's status instead (128 + N if signal N ended it)."""


def outcome_of(error: DLMError) -> int:
    """The exit status for a failed call."""
    if isinstance(error, ConnectionFailed):
        return CONNECTION
    if isinstance(error, NotOwner) or (isinstance(error, Refused) and error.status == "NotFound"):
        return REFUSED
    if isinstance(error, BadPayload):
        return USAGE
    return SERVER


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit status 2, as ``dlm`` reports them."""

    def error(self, message: str) -> NoReturn:
        raise _Usage(message)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable duration")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every subcommand takes, before or after its name. Only the
    top-level parser sets defaults, so a subcommand's copy overrides them
    only when given."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--host", default=default("127.0.0.1"), help="the server's host name or address")
    parser.add_argument("--port", type=int, default=default(DEFAULT_PORT), help="the server's port")
    parser.add_argument("--id", default=default(None), help="the ID to act as [default: $DLM_ID, else random]")
    parser.add_argument("--encoded", action="store_true", default=default(False), help="send table-encoded lines")
    parser.add_argument(
        "--codec",
        choices=("table", "identity", "base64"),
        default=default("table"),
        help="how values are stored: table (the default, as the Python client), identity, base64",
    )
    parser.add_argument("--json", action="store_true", default=default(False), help="print answers as JSON")
    parser.add_argument(
        "--timeout", type=_seconds, default=default(10.0), metavar="S", help="seconds for the connection and each reply"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m jackrabbit_dlm",
        description="Talk to a Jackrabbit DLM server: locks, data items, and running a command under a lock.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"dlm (python) {__version__}")
    _global_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _global_options(sub, defaults=False)
        return sub

    def expire(sub: argparse.ArgumentParser, help: str) -> None:
        sub.add_argument("--expire", type=_positive_seconds, required=True, metavar="S", help=help)

    sub = command("lock", "Take or renew a lock.")
    sub.add_argument("name", help="the lock's name")
    expire(sub, "seconds the hold lasts unless renewed")
    command("unlock", "Release a lock.").add_argument("name", help="the lock's name")
    command("test", "Show who holds a lock, changing nothing (exit 0 only if it is this ID).").add_argument(
        "name", help="the lock's name"
    )
    sub = command("put", "Store VALUE (`-` reads it from stdin) as the data item NAME.")
    sub.add_argument("name", help="the data item's name")
    sub.add_argument("value", help="the value, or - to read it from stdin")
    expire(sub, "seconds the item lasts unless stored again")
    command("get", "Print the data item NAME exactly as stored.").add_argument("name", help="the data item's name")
    command("erase", "Remove the data item NAME.").add_argument("name", help="the data item's name")
    command("version", "Print the server's version.")
    command("stats", "Print the server's counters.")
    sub = command("run", "Run COMMAND while holding the lock NAME, like flock(1) across machines.")
    sub.add_argument("name", help="the lock's name")
    expire(sub, "seconds the hold lasts unless renewed (renewed every EXPIRE/3)")
    sub.add_argument("--wait", type=_seconds, default=0.0, metavar="S", help="seconds to wait in the lock's queue")
    sub.usage = "%(prog)s [OPTIONS] --expire S NAME -- COMMAND..."
    return parser


class Report:
    """How answers are shown: plain lines, or one JSON object with --json."""

    def __init__(self, as_json: bool):
        self.as_json = as_json

    def answer(self, plain: str, fields: Dict[str, Any]) -> int:
        if self.as_json:
            print(json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True), flush=True)
        elif plain:
            print(plain, flush=True)
        return SUCCESS

    def refused(self, why: str, fields: Dict[str, Any]) -> int:
        if self.as_json:
            self.answer("", fields)
        print(f"dlm: {why}", file=sys.stderr)
        return REFUSED

    def no_item(self, name: str) -> int:
        return self.refused(f"{quoted(name)} has no data item", {"Status": "NotFound", "Name": name})


def _codec(name: str) -> Codec:
    """The value codec ``--codec`` names."""
    codecs: Dict[str, Codec] = {"table": TableCodec(), "identity": IdentityCodec(), "base64": Base64Codec()}
    return codecs[name]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # `run` takes its command after `--`, options and all.
    head, tail = (words[: words.index("--")], words[words.index("--") + 1 :]) if "--" in words else (words, [])
    try:
        args = parser.parse_args(head)
        if args.command != "run" and "--" in words:
            args = parser.parse_args(words)
    except _Usage as e:
        print(f"dlm: {e}", file=sys.stderr)
        return USAGE
    if args.command is None:
        print("dlm: a subcommand is needed; see --help", file=sys.stderr)
        return USAGE
    name = getattr(args, "name", "dlm")
    identity = args.id or os.environ.get("DLM_ID") or None
    client = Client(
        (args.host, args.port),
        id=identity,
        encoding=TABLE if args.encoded else PLAIN,
        codec=_codec(args.codec),
        timeout=args.timeout,
    )
    report = Report(args.json)
    try:
        with client:
            if args.command == "run":
                return run(client, name, args.expire, args.wait, tail)
            return dispatch(client, args, name, report)
    except DLMError as e:
        print(f"dlm: {e}", file=sys.stderr)
        return outcome_of(e)


def dispatch(client: Client, args: argparse.Namespace, name: str, report: Report) -> int:
    try:
        return _answer(client, args, name, report)
    except NotOwner as e:
        return report.refused(str(e), {"Status": e.status, "Name": name})


def _answer(client: Client, args: argparse.Namespace, name: str, report: Report) -> int:
    command = args.command
    if command == "lock":
        hold = client.lock(name, args.expire)
        return report.answer(
            f"Locked {name} (token {hold.token}, ID {client.id})",
            {"Status": "Locked", "Name": name, "ID": client.id, "Token": hold.token},
        )
    if command == "unlock":
        if client.unlock(name):
            return report.answer(f"Unlocked {name}", {"Status": "Unlocked", "Name": name, "Released": True})
        return report.refused(
            f"{quoted(name)} was not locked", {"Status": "Unlocked", "Name": name, "Released": False}
        )
    if command == "test":
        state = client.test_lock(name)
        status = {"Status": state.status.value, "Name": name}
        if state.owned:
            return report.answer(f"{quoted(name)} is locked by this ID", status)
        if state.free:
            return report.refused(f"{quoted(name)} is not locked", status)
        return report.refused(f"{quoted(name)} is locked by another ID", status)
    if command == "put":
        value = args.value
        if value == "-":
            try:
                value = sys.stdin.buffer.read().decode("utf-8")
            except UnicodeDecodeError:
                print("dlm: the value on stdin is not UTF-8 text", file=sys.stderr)
                return USAGE
        client.put(name, value, args.expire)
        return report.answer(f"Stored {name}", {"Status": "Done", "Name": name, "ID": client.id})
    if command == "get":
        data = client.get(name)
        if data is None:
            return report.no_item(name)
        if report.as_json:
            return report.answer("", {"Status": "Done", "Name": name, "Value": data.decode("utf-8", "replace")})
        # Byte for byte, so `get x > f` gives back what `put x - < f` stored.
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return SUCCESS
    if command == "erase":
        if client.erase(name):
            return report.answer(f"Erased {name}", {"Status": "Done", "Name": name})
        return report.no_item(name)
    if command == "version":
        version = client.version()
        return report.answer(version, {"Status": "Version", "ID": version})
    # stats: the integer counters, as dlm shows them
    counters = {k: v for k, v in client.stats().items() if isinstance(v, int)}
    fields: Dict[str, Any] = {"Status": "Stats"}
    fields.update(counters)
    return report.answer("\n".join(f"{k}: {counters[k]}" for k in sorted(counters)), fields)


class _Signals:
    """SIGTERM and SIGHUP to us are passed on to the command as SIGTERM, and
    we stay to release the lock; SIGINT (a terminal's Ctrl-C already reaches
    the command) is only survived."""

    def __init__(self) -> None:
        self.child: Optional["subprocess.Popen[bytes]"] = None
        self.previous: Dict[int, Any] = {}
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            self.previous[number] = signal.signal(number, self._caught)

    def _caught(self, number: int, frame: Optional[FrameType]) -> None:
        if number != signal.SIGINT and self.child is not None and self.child.returncode is None:
            self.child.send_signal(signal.SIGTERM)

    def restore(self) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def run(client: Client, name: str, expire: float, wait: float, argv: List[str]) -> int:
    """Runs ``argv`` under the lock, renewed every ``expire/3``, with
    ``$DLM_TOKEN`` set; SIGTERM to the command if the hold is lost. Exits
    with the command's status."""
    if not argv:
        print("dlm: run needs a COMMAND after --", file=sys.stderr)
        return USAGE
    signals = _Signals()
    guard = threading.Lock()

    def lost(hold: Hold) -> None:
        print(
            f"dlm: lost the lock on {quoted(name)} ({hold.lost_reason}); sending SIGTERM to the command",
            file=sys.stderr,
        )
        with guard:
            if signals.child is not None and signals.child.returncode is None:
                signals.child.send_signal(signal.SIGTERM)

    try:
        hold = client.lock(name, expire, wait, auto_renew=True, on_lost=lost)
        try:
            with guard:
                signals.child = subprocess.Popen(argv, env=dict(os.environ, DLM_TOKEN=str(hold.token)))
        except OSError as e:
            _release(hold)
            print(f"dlm: cannot run {argv[0]}: {e.strerror or e}", file=sys.stderr)
            return 127 if isinstance(e, FileNotFoundError) else 126
        while True:
            try:
                status = signals.child.wait()
                break
            except InterruptedError:  # pragma: no cover (PEP 475 retries)
                continue
        _release(hold)
    finally:
        signals.restore()
    return status if status >= 0 else 128 - status


def _release(hold: Hold) -> None:
    try:
        hold.release()
    except NotOwner:
        pass
    except DLMError as e:
        print(f"dlm: could not release the lock: {e}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Request lines out, reply lines in: the client's side of PROTOCOL.md.

No sockets here. The sync client, the asyncio client and the DLMLocker
compatibility layer all build their lines and read their replies with these
functions, so the line format exists once and is tested without a server.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .codec import table_decode, table_encode
from .errors import ProtocolError

#: The server's default port.
DEFAULT_PORT = 37373

#: Plain JSON lines, as the older DLMLocker sends them.
PLAIN = "plain"
#: Table-encoded lines, as the newer DLMLocker sends them.
TABLE = "table"
ENCODINGS = (PLAIN, TABLE)

#: What may name a server: ``"host:port"``, ``"host"`` (default port),
#: ``"[v6addr]:port"`` or a ``(host, port)`` pair.
EndpointLike = Union[str, Tuple[str, int]]


def check_encoding(encoding: str) -> str:
    """``encoding`` if it is ``"plain"`` or ``"table"``, else ValueError."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be 'plain' or 'table', not {encoding!r}")
    return encoding


def parse_endpoint(endpoint: EndpointLike) -> Tuple[str, int]:
    """``(host, port)`` for one of the forms of :data:`EndpointLike`."""
    if isinstance(endpoint, tuple):
        return str(endpoint[0]), int(endpoint[1])
    text = endpoint.strip()
    port: str
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:  # a bare name, IPv4 address or IPv6 address
        host, port = text, ""
    if not host:
        host = "127.0.0.1"
    try:
        number = int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"bad port in endpoint {endpoint!r}") from None
    if not 0 < number < 65536:
        raise ValueError(f"bad port in endpoint {endpoint!r}")
    return host, number


def parse_endpoints(endpoints: Union[EndpointLike, Iterable[EndpointLike]]) -> List[Tuple[str, int]]:
    """The list of ``(host, port)`` for one endpoint or a list of them."""
    if isinstance(endpoints, (str, tuple)):
        endpoints = [endpoints]
    parsed = [parse_endpoint(e) for e in endpoints]
    if not parsed:
        raise ValueError("no endpoint given")
    return parsed


def server_name(endpoint: Tuple[str, int]) -> str:
    """``host:port`` (``[host]:port`` for IPv6), for messages."""
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_seconds(seconds: float) -> str:
    """Seconds as the server reads them: a plain decimal, only the digits it
    needs (``30``, ``0.25``), never an exponent."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
    if isinstance(seconds, int):
        return str(seconds)
    if not math.isfinite(seconds):
        raise ValueError(f"seconds must be finite, not {seconds}")
    if seconds.is_integer():
        return str(int(seconds))
    return format(Decimal(repr(seconds)), "f")


def request_fields(
    action: str,
    id: str,
    name: str,
    *,
    expire: Optional[float] = None,
    wait: Optional[float] = None,
    data: Optional[str] = None,
    mode: Optional[str] = None,
    limit: Optional[int] = None,
    auth: Optional[Tuple[str, str]] = None,
) -> Dict[str, Any]:
    """The fields of one request of the native client, in wire order.

    ``auth`` is ``(Name, Identity)``; ``mode`` ``"Shared"`` or
    ``"Exclusive"``; ``limit`` the holder limit of a shared lock.
    """
    fields: Dict[str, Any] = {"ID": id, "FileName": name, "Action": action}
    if expire is not None:
        fields["Expire"] = format_seconds(expire)
    if wait:
        fields["Wait"] = format_seconds(wait)
    if data is not None:
        fields["DataStore"] = data
    if mode is not None:
        fields["Mode"] = mode
    if limit is not None:
        fields["Limit"] = str(limit)
    if auth is not None:
        fields["Name"], fields["Identity"] = auth
    return fields


def request_line(fields: Mapping[str, Any], encoding: str) -> bytes:
    """One request line, newline included, with ``fields`` as its JSON
    object, plain or table-encoded."""
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    if encoding == TABLE:
        return table_encode(text.encode("utf-8")).encode("ascii") + b"\n"
    return text.encode("utf-8") + b"\n"


def reply_json(line: bytes) -> bytes:
    """The JSON text of one reply line (newline removed or not), decoding the
    table encoding if the line is in it. The server answers in the encoding
    of the request, and the first byte tells which: ``{`` is plain."""
    line = line.strip()
    if line.startswith(b"{"):
        return line
    try:
        return table_decode(line.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(f"reply is neither JSON nor table-encoded: {e}") from None


class Reply:
    """A parsed reply: its ``status``, all its ``fields``, and ``raw``, the
    JSON text it was parsed from (table encoding removed)."""

    __slots__ = ("status", "fields", "raw")

    def __init__(self, status: str, fields: Dict[str, Any], raw: bytes = b""):
        self.status = status
        self.fields = fields
        self.raw = raw

    def __repr__(self) -> str:
        return f"Reply({self.fields!r})"

    @property
    def id(self) -> Optional[str]:
        """The ``ID`` field, if it is a string."""
        value = self.fields.get("ID")
        return value if isinstance(value, str) else None

    @property
    def token(self) -> Optional[int]:
        """The fencing ``Token`` of a ``Locked`` reply to ``Lock``."""
        value = self.fields.get("Token")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def data(self) -> Optional[str]:
        """The ``DataStore`` string of a successful ``Get``."""
        value = self.fields.get("DataStore")
        return value if isinstance(value, str) else None

    @property
    def mode(self) -> Optional[str]:
        """The ``Mode`` of a reply to a shared lock's request."""
        value = self.fields.get("Mode")
        return value if isinstance(value, str) else None

    @property
    def holders(self) -> Optional[int]:
        """``Holders``, the count in a holder's ``TestLock`` of a shared lock."""
        value = self.fields.get("Holders")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def counters(self) -> Dict[str, Union[int, float]]:
        """Every number field: in a ``Stats`` reply, every counter."""
        return {
            k: v
            for k, v in self.fields.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }


def parse_reply(line: bytes) -> Reply:
    """Parses one reply line, plain or table-encoded."""
    text = reply_json(line)
    try:
        fields = json.loads(text)
    except ValueError as e:  # also UnicodeDecodeError
        raise ProtocolError(f"reply is not JSON: {e}") from None
    if not isinstance(fields, dict):
        raise ProtocolError("reply is not a JSON object")
    status = fields.get("Status")
    if not isinstance(status, str):
        raise ProtocolError("reply has no Status string")
    return Reply(status, fields, text)


def stats_lines(counters: Mapping[str, Union[int, float]]) -> Sequence[str]:
    """``name: value`` lines sorted by name, as ``dlm stats`` prints them."""
    return [f"{k}: {counters[k]}" for k in sorted(counters)]

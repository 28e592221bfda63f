"""A drop-in for upstream's ``DLMLocker.Locker``.

Change ``from DLMLocker import Locker`` to ``from jackrabbit_dlm.compat
import Locker`` and nothing else: the constructor takes the same arguments,
the methods have the same names and return the same values (``'locked'``,
``'notowner'``, ``'failure'``, the raw reply of ``Put``...), and the requests
carry the same fields (``Expire`` ``"0"`` where unused, ``DataStore`` null on
``Get``, ``Erase`` and ``Version``, ``Name`` and ``Identity`` when given).

What changes underneath:

* One persistent connection per Locker instead of a TCP connection per
  request, reconnected when the server closes it.
* A request whose connection broke after it was sent is sent again only if a
  repeat cannot change its meaning: never an ``Unlock`` or ``Erase`` (they
  return ``'failure'`` instead; upstream would send them again and could
  report ``'notowner'`` for a release that happened).
* Thread-safe: threads sharing a Locker take turns on its connection.
* Errors are not printed; the last one is kept in ``Error``, as the newest
  upstream does.

Lines are table-encoded by default, as the newest DLMLocker sends them; then,
as there, the raw replies of ``Put`` and ``Erase`` are ``bytes``. Pass
``Encoding="plain"`` for the older plain-JSON lines, whose raw replies are
``str``.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any, Callable, Dict, Optional, Union

from . import __version__, protocol
from ._core import NOT_REPEATABLE, random_id
from .client import Client
from .codec import table_decode, table_encode
from .errors import ConnectionFailed, ProtocolError, Unavailable
from .protocol import Reply

#: The statuses that end a ``Lock`` or ``Unlock`` call, lower-cased; upstream
#: sleeps and asks again on any other.
FINAL_STATUSES = ("badpayload", "locked", "unlocked", "notowner", "notfound", "version", "no")

#: A raw reply: bytes for table-encoded lines, str for plain ones.
RawReply = Union[bytes, str]


class Locker:
    """A lock (and the data item of the same name), as DLMLocker's ``Locker``.

    ``filename`` names the lock and the data item. ``Retry`` is how many more
    times a call is tried after the server could not be reached (upstream
    counts one more: ``Retry=7`` makes 9 tries), ``RetrySleep`` the seconds
    between tries, ``Timeout`` the limit on connecting and on each reply. ``ID``
    defaults to a fresh random one. ``Encoder``/``Decoder`` turn stored
    values into the ``DataStore`` string and back (default the table
    encoding). ``name``/``identity`` authenticate. ``Encoding`` (an addition)
    picks ``"table"`` or ``"plain"`` lines.
    """

    VERSION = __version__

    def __init__(
        self,
        filename: str,
        Retry: int = 7,
        RetrySleep: float = 1,
        Timeout: float = 300,
        ID: Optional[str] = None,
        Host: str = "",
        Port: int = protocol.DEFAULT_PORT,
        Encoder: Optional[Callable[[Any], Any]] = None,
        Decoder: Optional[Callable[[Any], Any]] = None,
        name: Optional[str] = None,
        identity: Optional[str] = None,
        *,
        Encoding: str = protocol.TABLE,
    ):
        self.ID: str = self.GetID() if ID is None else ID
        self.filename = filename
        self.retryLimit = Retry
        self.retrysleep = RetrySleep
        self.timeout = Timeout
        self.host = Host or "127.0.0.1"
        self.port = Port
        self.name = name
        self.identity = identity
        self.encoder: Callable[[Any], Any] = Encoder if Encoder else self.dlmEncode
        self.decoder: Callable[[Any], Any] = Decoder if Decoder else self.dlmDecode
        self.Error: Optional[str] = None
        self.encoding = protocol.check_encoding(Encoding)
        self._client = Client((self.host, self.port), id=self.ID, encoding=self.encoding, timeout=Timeout)

    def __repr__(self) -> str:
        return f"Locker({self.filename!r}, ID={self.ID!r}, Host={self.host!r}, Port={self.port})"

    def close(self) -> None:
        """Closes the connection (an addition; the next call reconnects)."""
        self._client.close()

    # -- upstream's helpers -------------------------------------------------

    def GetID(self) -> str:
        """A fresh random URL-safe ID of 37 to 72 characters."""
        return random_id()

    def dlmEncode(self, data_bytes: Union[bytes, str, Dict[str, Any]]) -> str:
        """The default Encoder: a dict as its JSON text, text as UTF-8, then
        the table encoding."""
        if isinstance(data_bytes, dict):
            data_bytes = json.dumps(data_bytes)
        if isinstance(data_bytes, str):
            data_bytes = data_bytes.encode("utf-8")
        return table_encode(data_bytes)

    def dlmDecode(self, encoded_str: str) -> bytes:
        """The default Decoder: table-encoded text to bytes (empty for empty)."""
        return table_decode(encoded_str) if encoded_str else b""

    def ShuffleJSON(self, payload: Union[str, Any]) -> Any:
        """``payload`` (JSON text or a value) with the keys of every object
        in random order. The server ignores key order; upstream shuffles its
        requests with this, which this layer does not need."""
        value = json.loads(payload) if isinstance(payload, str) else payload
        return _shuffled(value)

    # -- the calls ----------------------------------------------------------

    def Lock(self, expire: Any = 300) -> str:
        """Takes or renews the lock: ``'locked'``, ``'notowner'``, ``'no'``,
        ``'badpayload'``, or ``'failure'`` when the server cannot be reached."""
        return self._status_call("Lock", expire)

    def Unlock(self) -> str:
        """Releases the lock: ``'unlocked'``, ``'notowner'`` or ``'failure'``."""
        return self._status_call("Unlock", 0)

    def IsLocked(self, expire: Any = 300, acquire: bool = True) -> Optional[str]:
        """One try, no retries: a ``Lock`` (``acquire``) or a ``TestLock``;
        the lower-cased status, ``'failure'`` if the server cannot be
        reached, None for a reply that is not JSON."""
        action = "Lock" if acquire else "TestLock"
        try:
            reply = self._exchange(action, self._fields(action, expire))
        except ConnectionFailed:
            return "failure"
        except ProtocolError:
            return None
        return reply.status.lower()

    def Put(self, expire: Any, data: Any) -> RawReply:
        """Stores ``Encoder(data)``; returns the server's raw reply, e.g.
        ``b'{"Status":"Done","ID":"..."}'``, or ``'failure'``."""
        return self._data_call("Put", expire, self.encoder(data))

    def Get(self) -> Optional[Dict[str, Any]]:
        """The reply as a dict, its ``DataStore`` decoded by the Decoder (and
        bytes turned into text); None if the server cannot be reached."""
        raw = self._data_call("Get", 0, None)
        try:
            reply = json.loads(raw)
        except ValueError:
            return None
        if isinstance(reply, dict) and "DataStore" in reply:
            value = self.decoder(reply["DataStore"])
            reply["DataStore"] = value.decode("utf-8") if isinstance(value, bytes) else value
        return reply if isinstance(reply, dict) else None

    def Erase(self) -> RawReply:
        """Removes the data item; returns the server's raw reply or ``'failure'``."""
        return self._data_call("Erase", 0, None)

    def Version(self) -> str:
        """``'<server version>:<client version>'``, with ``Error`` for the
        server's when it cannot be asked."""
        raw = self._data_call("Version", 0, None)
        server = "Error"
        try:
            reply = json.loads(raw)
        except ValueError:
            reply = None
        if isinstance(reply, dict) and isinstance(reply.get("ID"), str):
            server = reply["ID"]
        return f"{server}:{self.VERSION}"

    def IsDLM(self) -> bool:
        """Whether a Jackrabbit DLM server answers."""
        return "JackrabbitDLM" in self.Version()

    # -- underneath ---------------------------------------------------------

    def _fields(self, action: str, expire: Any, **data: Any) -> Dict[str, Any]:
        fields: Dict[str, Any] = {"ID": self.ID, "FileName": self.filename, "Action": action, "Expire": str(expire)}
        fields.update(data)
        if self.name or self.identity:
            fields["Name"] = self.name
            fields["Identity"] = self.identity
        return fields

    def _exchange(self, action: str, fields: Dict[str, Any]) -> Reply:
        """One request over the persistent connection (the client's resend
        rules apply); the reply of an ``Unavailable`` as any other."""
        self.Error = None
        try:
            return self._client._exchange(action, self.filename, protocol.request_line(fields, self.encoding))
        except Unavailable as e:
            if isinstance(e.reply, Reply):
                return e.reply
            raise
        except ConnectionFailed as e:
            self.Error = str(e)
            raise

    def _attempts(self, action: str, fields: Dict[str, Any], done: Callable[[Reply], bool]) -> Optional[Reply]:
        """Upstream's retry loop: a connection failure is tried again up to
        ``Retry + 1`` more times, a reply ``done`` refuses is asked again after
        a sleep. None when it gives up."""
        failures = 0
        while True:
            try:
                reply = self._exchange(action, fields)
            except ConnectionFailed as e:
                if e.may_have_applied and action in NOT_REPEATABLE:
                    return None
                if failures > self.retryLimit:
                    return None
                failures += 1
                time.sleep(self.retrysleep)
                continue
            except ProtocolError as e:
                self.Error = str(e)
            else:
                if done(reply):
                    return reply
                if action in NOT_REPEATABLE:
                    self.Error = f"{action} {self.filename!r}: {reply.status}, not sent again"
                    return None
            time.sleep(self.retrysleep)

    def _status_call(self, action: str, expire: Any) -> str:
        reply = self._attempts(action, self._fields(action, expire), _final)
        return "failure" if reply is None else reply.status.lower()

    def _data_call(self, action: str, expire: Any, data: Any) -> RawReply:
        fields = self._fields(action, expire, DataStore=data)
        reply = self._attempts(action, fields, _any)
        if reply is None:
            return "failure"
        return reply.raw if self.encoding == protocol.TABLE else reply.raw.decode("utf-8")


def _final(reply: Reply) -> bool:
    return reply.status.lower() in FINAL_STATUSES


def _any(reply: Reply) -> bool:
    return True


def _shuffled(value: Any) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        random.shuffle(keys)
        return {k: _shuffled(value[k]) for k in keys}
    if isinstance(value, list):
        return [_shuffled(v) for v in value]
    return value

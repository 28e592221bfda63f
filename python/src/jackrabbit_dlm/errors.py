"""The exceptions of the client.

Every failure is a :class:`DLMError`. Four families, because callers react
differently to each:

* :class:`ConnectionFailed`: the server could not be reached or the
  connection broke (retry later, or elsewhere). ``may_have_applied`` says
  whether the request may have reached the server before it broke.
* :class:`ProtocolError`: the reply is not this protocol (a bug, or the wrong
  port).
* :class:`CodecError`: the value codec refused a value.
* :class:`Refused`: the server answered, and the answer means no:
  :class:`NotOwner`, :class:`MemoryGuard` (``NO``), :class:`BadPayload`,
  :class:`BadAction`, :class:`Unavailable` (a cluster could not commit it).
"""

from __future__ import annotations

import json
from typing import Dict, Type


class DLMError(Exception):
    """Any failure of a Jackrabbit DLM call."""


class ConnectionFailed(DLMError):
    """Connecting to the server, sending to it or reading from it failed.

    ``server`` is ``host:port``; ``during`` what the client was doing
    (``connect to``, ``send to``, ``receive from``); ``may_have_applied`` is
    true when the request had gone out in full, so the server may have acted
    on it (the client then never sends an ``Unlock`` or ``Erase`` again).
    """

    def __init__(self, server: str, during: str, cause: BaseException, may_have_applied: bool):
        self.server = server
        self.during = during
        self.cause = cause
        self.may_have_applied = may_have_applied
        super().__init__(f"{during} {server}: {cause or type(cause).__name__}")


class Timeout(ConnectionFailed):
    """No reply came within the timeout. The reply may still be on its way, so
    the connection was dropped and the request was not sent again."""

    def __init__(self, server: str, cause: BaseException):
        super().__init__(server, "receive from", cause, True)
        self.args = (f"receive from {server}: timed out",)


class ProtocolError(DLMError):
    """The server's reply is not a reply of the Jackrabbit DLM protocol."""


class CodecError(DLMError):
    """The value codec could not encode a value or decode a stored one."""


class UnsupportedFeature(DLMError):
    """The server does not have an extension the call needs (for example
    shared locks on a server that predates them)."""


_MEANING: Dict[str, str] = {
    "NotOwner": "owned by another ID",
    "NotFound": "not found",
    "NO": "refused by the server's memory guard",
    "BadPayload": "the server rejected the request as malformed",
    "BadAction": "the server does not know this action",
    "Unavailable": "the cluster could not commit it in time; its effect is unknown",
}


def quoted(name: str) -> str:
    """``name`` in double quotes with JSON escapes, as ``dlm`` quotes names."""
    return json.dumps(name, ensure_ascii=False)


class Refused(DLMError):
    """The server answered, and the answer means the request did not do what
    was asked. ``status`` is the server's word for it (``NotOwner``, ``NO``,
    ...), ``action`` and ``name`` what was asked."""

    def __init__(self, action: str, name: str, status: str):
        self.action = action
        self.name = name
        self.status = status
        meaning = _MEANING.get(status, "unexpected answer")
        super().__init__(f"{action} {quoted(name)}: {meaning} ({status})")


class NotOwner(Refused):
    """The lock or data item is owned by another ID (or a shared lock is full,
    or its limit differs, or a waiting acquire ran out of time)."""


class MemoryGuard(Refused):
    """The server's memory guard refused to create or grow an entry (``NO``)."""


class BadPayload(Refused):
    """The server found the request malformed or out of its limits (a TTL
    above its maximum, a failed authentication, ...)."""


class BadAction(Refused):
    """The server does not know the action."""


class Unavailable(Refused):
    """A cluster could not commit the request in time: its effect is unknown.
    ``reply`` is the server's reply, when there was one to keep."""

    reply: object = None


_BY_STATUS: Dict[str, Type[Refused]] = {
    "NotOwner": NotOwner,
    "NO": MemoryGuard,
    "BadPayload": BadPayload,
    "BadAction": BadAction,
    "Unavailable": Unavailable,
}


def refusal(action: str, name: str, status: str) -> Refused:
    """The exception for the server answering ``status`` to ``action``."""
    return _BY_STATUS.get(status, Refused)(action, name, status)

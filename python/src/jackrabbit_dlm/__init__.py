"""A client for Jackrabbit DLM lock servers.

:class:`Client` keeps one persistent connection (or a list of a cluster's
endpoints) and offers locks with fencing tokens, server-side waiting, shared
locks and semaphores, auto-renewing holds, and data items with value codecs.
:mod:`jackrabbit_dlm.aio` is the same for asyncio, and
:mod:`jackrabbit_dlm.compat` a drop-in for upstream's ``DLMLocker.Locker``.
"""

__version__ = "0.1.0"

from ._core import EXCLUSIVE, SHARED, LockState, LockStatus
from .client import Client, Hold
from .codec import Base64Codec, Codec, FunctionCodec, IdentityCodec, TableCodec
from .errors import (
    BadAction,
    BadPayload,
    CodecError,
    ConnectionFailed,
    DLMError,
    MemoryGuard,
    NotOwner,
    ProtocolError,
    Refused,
    Timeout,
    Unavailable,
    UnsupportedFeature,
)
from .protocol import DEFAULT_PORT, PLAIN, TABLE

__all__ = [
    "__version__",
    "Client",
    "Hold",
    "LockState",
    "LockStatus",
    "EXCLUSIVE",
    "SHARED",
    "PLAIN",
    "TABLE",
    "DEFAULT_PORT",
    "Codec",
    "TableCodec",
    "IdentityCodec",
    "Base64Codec",
    "FunctionCodec",
    "DLMError",
    "ConnectionFailed",
    "Timeout",
    "ProtocolError",
    "CodecError",
    "UnsupportedFeature",
    "Refused",
    "NotOwner",
    "MemoryGuard",
    "BadPayload",
    "BadAction",
    "Unavailable",
]

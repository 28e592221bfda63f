"""The 78-character table encoding, and the value codecs built on it.

Two different things use the table encoding:

* whole request and reply lines (the newer DLMLocker sends its lines that way;
  see :mod:`jackrabbit_dlm.protocol`), and
* stored values: the server keeps ``DataStore`` as an opaque string, and a
  *value codec* decides what that string is for the bytes a caller stores.

A value codec turns bytes into the string the server keeps, and back. The
server never looks inside, so whatever a codec writes (an encryption, say) is
all that other clients and the server's memory ever see.
"""

from __future__ import annotations

import base64
import binascii
from typing import Callable, Dict, List, Protocol

from .errors import CodecError

#: Byte ``b`` is written as ``ALPHABET[b // 78]`` then ``ALPHABET[b % 78]``.
ALPHABET = "1aA2bB3cC4dD5eE6fF7gG8hH9iI0jJ!kK@lL#mM$nN%oO^pP&qQ*rR(sS)tT/uU?vV=wW+xX;yY:zZ"
_BASE = len(ALPHABET)

_PAIRS: List[str] = [ALPHABET[b // _BASE] + ALPHABET[b % _BASE] for b in range(256)]
_BYTE_OF: Dict[str, int] = {pair: b for b, pair in enumerate(_PAIRS)}


def table_encode(data: bytes) -> str:
    """``data`` in the table encoding: two characters per byte."""
    return "".join([_PAIRS[b] for b in data])


def table_decode(text: str) -> bytes:
    """The bytes that table-encoded ``text`` stands for.

    Raises :class:`ValueError` for an odd length, a character outside the
    alphabet, or a pair whose value is above 255, as the server does.
    """
    if len(text) % 2:
        raise ValueError(f"table-encoded text of odd length {len(text)}")
    try:
        return bytes([_BYTE_OF[text[i : i + 2]] for i in range(0, len(text), 2)])
    except KeyError as bad:
        raise ValueError(f"not a table-encoded byte: {bad.args[0]!r}") from None


class Codec(Protocol):
    """What a value codec provides: bytes to the stored string and back.

    ``decode(encode(v)) == v`` must hold for every value ``encode`` accepts.
    Either method may raise any exception for input it refuses; the client
    reports it as :class:`~jackrabbit_dlm.errors.CodecError`.
    """

    def encode(self, value: bytes) -> str: ...

    def decode(self, text: str) -> bytes: ...


class TableCodec:
    """Values stored in the table encoding, as DLMLocker stores them by
    default. Any bytes; two characters each on the server."""

    def encode(self, value: bytes) -> str:
        return table_encode(value)

    def decode(self, text: str) -> bytes:
        return table_decode(text)

    def __repr__(self) -> str:
        return "TableCodec()"


class IdentityCodec:
    """Values are UTF-8 text, stored as they are (what the ``dlm`` tool and
    the Rust client do by default). Bytes that are not UTF-8 are refused."""

    def encode(self, value: bytes) -> str:
        return value.decode("utf-8")

    def decode(self, text: str) -> bytes:
        return text.encode("utf-8")

    def __repr__(self) -> str:
        return "IdentityCodec()"


class Base64Codec:
    """Values are any bytes, stored as standard padded base64."""

    def encode(self, value: bytes) -> str:
        return base64.b64encode(value).decode("ascii")

    def decode(self, text: str) -> bytes:
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as e:
            raise ValueError(f"not base64: {e}") from None

    def __repr__(self) -> str:
        return "Base64Codec()"


class FunctionCodec:
    """A codec made of two callables, e.g. an encryption and its inverse."""

    def __init__(self, encode: Callable[[bytes], str], decode: Callable[[str], bytes]):
        self._encode = encode
        self._decode = decode

    def encode(self, value: bytes) -> str:
        return self._encode(value)

    def decode(self, text: str) -> bytes:
        return self._decode(text)

    def __repr__(self) -> str:
        return f"FunctionCodec({self._encode!r}, {self._decode!r})"


def encode_value(codec: Codec, value: bytes) -> str:
    """``codec.encode(value)``, with any failure (or a non-string result) as
    :class:`CodecError`."""
    try:
        text = codec.encode(value)
    except Exception as e:
        raise CodecError(f"cannot encode the value: {e}") from e
    if not isinstance(text, str):
        raise CodecError(f"the codec encoded to {type(text).__name__}, not str")
    return text


def decode_value(codec: Codec, text: str) -> bytes:
    """``codec.decode(text)``, with any failure (or a non-bytes result) as
    :class:`CodecError`."""
    try:
        value = codec.decode(text)
    except Exception as e:
        raise CodecError(f"cannot decode the stored value: {e}") from e
    if not isinstance(value, (bytes, bytearray)):
        raise CodecError(f"the codec decoded to {type(value).__name__}, not bytes")
    return bytes(value)

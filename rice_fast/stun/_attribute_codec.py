"""Checks and byte helpers shared by the typed attribute modules.

Every attribute class follows the same two rules. Its constructor checks
the arguments and raises ``StunBuildError`` naming the bad value. Its
``decode`` classmethod raises only ``StunParseError``, with the offset
relative to the start of the attribute value. For a value of the wrong
length that offset is ``LENGTH_FIELD`` (-2), the attribute's own length
field, as the codec's typed accessors report it.

``decode`` builds the object with ``new_instance`` and ``set_field`` instead
of the constructor. That skips the build-time limits, because RFC 8489
requires receivers to accept longer text than senders may write, and it
keeps decoding cheap.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Final

from rice_fast.stun.errors import StunBuildError, StunParseError

__all__ = [
    "LENGTH_FIELD",
    "U16",
    "U32",
    "U64",
    "U16_PAIR",
    "check_bytes",
    "check_flag",
    "check_length",
    "check_min_length",
    "check_text",
    "check_transaction_id",
    "check_uint",
    "decode_text",
    "new_instance",
    "parse_host",
    "set_field",
]

LENGTH_FIELD: Final = -2

U16: Final = struct.Struct("!H")
U32: Final = struct.Struct("!I")
U64: Final = struct.Struct("!Q")
U16_PAIR: Final = struct.Struct("!HH")

# Bypass the constructor: used only by decoders, on values already checked.
new_instance: Final = object.__new__
set_field: Final = object.__setattr__


def check_uint(value: object, bits: int, name: str) -> int:
    """Return ``value`` if it is an int in 0..2**bits-1, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise StunBuildError(f"{name} must be an int, got {value!r}")
    if not 0 <= value < 1 << bits:
        raise StunBuildError(f"{name} {value} is outside 0..{(1 << bits) - 1}")
    return value


def check_flag(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool, else raise."""
    if not isinstance(value, bool):
        raise StunBuildError(f"{name} must be a bool, got {value!r}")
    return value


def check_bytes(
    value: object,
    name: str,
    *,
    lengths: tuple[int, ...] | None = None,
    max_length: int = 0xFFFF,
) -> bytes:
    """Return ``value`` as ``bytes`` after checking its type and length.

    Accepts any bytes-like object. ``lengths``, when given, lists the only
    allowed lengths.
    """
    if not isinstance(value, bytes | bytearray | memoryview):
        raise StunBuildError(f"{name} must be bytes, got {type(value).__name__}")
    data = bytes(value)
    if lengths is not None and len(data) not in lengths:
        allowed = ", ".join(str(n) for n in lengths)
        raise StunBuildError(
            f"{name} is {len(data)} bytes long, but it must be {allowed} bytes"
        )
    if len(data) > max_length:
        raise StunBuildError(
            f"{name} of {len(data)} bytes exceeds the maximum of {max_length}"
        )
    return data


def check_text(value: object, name: str, max_chars: int, max_bytes: int) -> str:
    """Return ``value`` if it is a str within the RFC's sending limits.

    ``max_chars`` and ``max_bytes`` are inclusive maxima: RFC 8489 states
    "fewer than 128 characters" and "fewer than 509 bytes", so callers pass
    127 and 508, or 509 where the RFC says "as long as 509 bytes".
    """
    if not isinstance(value, str):
        raise StunBuildError(f"{name} must be a str, got {type(value).__name__}")
    if len(value) > max_chars:
        raise StunBuildError(
            f"{name} of {len(value)} characters exceeds the maximum of {max_chars}"
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise StunBuildError(
            f"{name} has a character that UTF-8 cannot encode at index {exc.start}"
        ) from None
    if size > max_bytes:
        raise StunBuildError(
            f"{name} of {size} UTF-8 bytes exceeds the maximum of {max_bytes}"
        )
    return value


def decode_text(value: bytes, name: str) -> str:
    """Decode ``value`` as UTF-8, raising ``StunParseError`` at the bad byte."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StunParseError(f"{name} is not valid UTF-8", exc.start) from None


def check_length(value: bytes, expected: int, name: str) -> None:
    """Raise ``StunParseError`` unless ``value`` is ``expected`` bytes long."""
    if len(value) != expected:
        raise StunParseError(
            f"{name} is {len(value)} bytes long, expected {expected}", LENGTH_FIELD
        )


def check_min_length(value: bytes, minimum: int, name: str) -> None:
    """Raise ``StunParseError`` if ``value`` is shorter than ``minimum`` bytes."""
    if len(value) < minimum:
        raise StunParseError(
            f"{name} is {len(value)} bytes long, expected at least {minimum}",
            LENGTH_FIELD,
        )


def check_transaction_id(transaction_id: bytes) -> None:
    """Raise ``StunParseError`` unless the transaction id is 12 bytes."""
    if len(transaction_id) != 12:
        raise StunParseError(
            f"transaction id is {len(transaction_id)} bytes long, expected 12", 0
        )


def parse_host(address: Any, name: str) -> tuple[tuple[str, int], bytes]:
    """Check a ``(host, port)`` pair and return it with the packed address.

    The returned host is in canonical text form (``inet_ntop``), so a value
    compares equal to its own decoded copy. IPv6 zones (``%eth0``) are
    rejected because no STUN address attribute can carry one.
    """
    if not isinstance(address, tuple | list) or len(address) != 2:
        raise StunBuildError(f"{name} must be a (host, port) tuple, got {address!r}")
    host, port = address
    if not isinstance(host, str):
        raise StunBuildError(f"{name} host must be a str, got {host!r}")
    check_uint(port, 16, f"{name} port")
    if "%" in host:
        raise StunBuildError(
            f"{name} host {host!r} has an IPv6 zone, which STUN cannot carry, "
            "so remove the %zone suffix"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        packed = socket.inet_pton(family, host)
    except (OSError, ValueError):
        raise StunBuildError(
            f"{name} host {host!r} is not an IPv4 or IPv6 address"
        ) from None
    return (socket.inet_ntop(family, packed), port), packed

"""NAT behavior discovery attributes (RFC 5780) and RFC 3489's PASSWORD.

RFC 5780 took CHANGE-REQUEST over from RFC 3489 unchanged. Its address
attributes (RESPONSE-ORIGIN, OTHER-ADDRESS) live with the other address
attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Final, Self

from rice_fast.stun._attribute_codec import (
    LENGTH_FIELD,
    U16,
    U32,
    check_bytes,
    check_flag,
    check_length,
    check_uint,
    new_instance,
    set_field,
)
from rice_fast.stun._constants import AttributeType
from rice_fast.stun.errors import StunParseError

__all__ = ["ChangeRequest", "Padding", "Password", "ResponsePort"]

_CHANGE_IP: Final = 0x04
_CHANGE_PORT: Final = 0x02


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """CHANGE-REQUEST (RFC 5780 §7.2): ask the server to send the response
    from its other IP address (``change_ip``, flag A) or port
    (``change_port``, flag B)."""

    change_ip: bool = False
    change_port: bool = False

    TYPE: ClassVar[int] = AttributeType.CHANGE_REQUEST

    def __post_init__(self) -> None:
        check_flag(self.change_ip, "CHANGE-REQUEST change_ip")
        check_flag(self.change_port, "CHANGE-REQUEST change_port")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the 4-byte value with the A and B bits."""
        flags = (_CHANGE_IP if self.change_ip else 0) | (
            _CHANGE_PORT if self.change_port else 0
        )
        return U32.pack(flags)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 4-byte value, ignoring bits other than A and B."""
        check_length(value, 4, "CHANGE-REQUEST")
        attribute = new_instance(cls)
        set_field(attribute, "change_ip", bool(value[3] & _CHANGE_IP))
        set_field(attribute, "change_port", bool(value[3] & _CHANGE_PORT))
        return attribute


@dataclass(frozen=True, slots=True)
class ResponsePort:
    """RESPONSE-PORT (RFC 5780 §7.5): the port to send the response to.

    The value is the 16-bit port followed by 2 bytes of padding.
    """

    port: int

    TYPE: ClassVar[int] = AttributeType.RESPONSE_PORT

    def __post_init__(self) -> None:
        check_uint(self.port, 16, "RESPONSE-PORT")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the port and two zero bytes."""
        return U32.pack(self.port << 16)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 4-byte value, or a 2-byte one without the padding."""
        # NOTE: RFC 5780 §7.5 can be read as a 2-byte value padded by the
        # attribute framing, so both lengths are accepted.
        if len(value) not in (2, 4):
            raise StunParseError(
                f"RESPONSE-PORT is {len(value)} bytes long, expected 4", LENGTH_FIELD
            )
        attribute = new_instance(cls)
        set_field(attribute, "port", U16.unpack_from(value)[0])
        return attribute


@dataclass(frozen=True, slots=True)
class Padding:
    """PADDING (RFC 5780 §7.6): filler to make a message fragment in transit.

    The content does not matter, and zeros are usual.
    """

    padding: bytes

    TYPE: ClassVar[int] = AttributeType.PADDING

    def __post_init__(self) -> None:
        set_field(self, "padding", check_bytes(self.padding, "PADDING"))

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the filler bytes."""
        return self.padding

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Wrap the filler, which may be any bytes."""
        attribute = new_instance(cls)
        set_field(attribute, "padding", value)
        return attribute


@dataclass(frozen=True, slots=True)
class Password:
    """PASSWORD (RFC 3489 §11.2.7): a Shared Secret response's password.

    RFC 5389 removed it along with the Shared Secret method. It decodes so
    that classic peers can be read. The password is left out of ``repr``.
    """

    password: bytes = field(repr=False)

    TYPE: ClassVar[int] = AttributeType.PASSWORD

    def __post_init__(self) -> None:
        set_field(self, "password", check_bytes(self.password, "PASSWORD"))

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the password bytes."""
        return self.password

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Wrap the password, which may be any bytes."""
        attribute = new_instance(cls)
        set_field(attribute, "password", value)
        return attribute

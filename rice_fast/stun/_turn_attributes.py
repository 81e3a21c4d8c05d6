"""The TURN attributes of RFC 8656 (and RFC 5766, RFC 6156, RFC 6062).

The address attributes XOR-PEER-ADDRESS and XOR-RELAYED-ADDRESS live with
the other address attributes. Numbers that the server must judge (address
family, protocol, channel number) decode whatever their value, so that the
server can send the error response its RFC prescribes (440, 442 or 400)
instead of treating the request as malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Self

from rice_fast.stun._attribute_codec import (
    U16,
    U32,
    check_bytes,
    check_flag,
    check_length,
    check_uint,
    new_instance,
    set_field,
)
from rice_fast.stun._constants import AddressFamily, AttributeType, TransportProtocol
from rice_fast.stun._stun_attributes import check_error_code, decode_error_code
from rice_fast.stun.errors import StunBuildError

__all__ = [
    "AdditionalAddressFamily",
    "AddressErrorCode",
    "ChannelNumber",
    "ConnectionId",
    "Data",
    "DontFragment",
    "EvenPort",
    "Icmp",
    "Lifetime",
    "RequestedAddressFamily",
    "RequestedTransport",
    "ReservationToken",
]

_FAMILIES: Final[dict[int, int]] = {int(f): f for f in AddressFamily}
_PROTOCOLS: Final[dict[int, int]] = {int(p): p for p in TransportProtocol}

# RFC 8656 §12: clients bind channel numbers 0x4000 through 0x4FFF, and
# 0x5000 and up are reserved. RFC 5766 servers accept these too.
_MIN_CHANNEL: Final = 0x4000
_MAX_CHANNEL: Final = 0x4FFF


def _check_family(family: object, name: str) -> None:
    if isinstance(family, bool) or family not in _FAMILIES:
        raise StunBuildError(
            f"{name} family {family!r} is not 1 (IPv4) or 2 (IPv6); "
            "pass an AddressFamily"
        )


@dataclass(frozen=True, slots=True)
class ChannelNumber:
    """CHANNEL-NUMBER (RFC 8656 §18.1): a channel in 0x4000..0x4FFF.

    Decoding accepts any 16-bit number, because RFC 8656 §12.2 has the
    server reject one out of range with a 400 error. The two RFFU bytes are written
    as zero and ignored.
    """

    channel: int

    TYPE: ClassVar[int] = AttributeType.CHANNEL_NUMBER

    def __post_init__(self) -> None:
        check_uint(self.channel, 16, "CHANNEL-NUMBER")
        if not _MIN_CHANNEL <= self.channel <= _MAX_CHANNEL:
            raise StunBuildError(
                f"CHANNEL-NUMBER 0x{self.channel:04x} is outside 0x4000..0x4fff"
            )

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the channel number and two zero bytes."""
        return U32.pack(self.channel << 16)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 4-byte value, or raise ``StunParseError``."""
        check_length(value, 4, "CHANNEL-NUMBER")
        attribute = new_instance(cls)
        set_field(attribute, "channel", U16.unpack_from(value)[0])
        return attribute


@dataclass(frozen=True, slots=True)
class Lifetime:
    """LIFETIME (RFC 8656 §18.2): seconds until the allocation expires."""

    seconds: int

    TYPE: ClassVar[int] = AttributeType.LIFETIME

    def __post_init__(self) -> None:
        check_uint(self.seconds, 32, "LIFETIME")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the 4-byte value."""
        return U32.pack(self.seconds)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 4-byte value, or raise ``StunParseError``."""
        check_length(value, 4, "LIFETIME")
        attribute = new_instance(cls)
        set_field(attribute, "seconds", U32.unpack(value)[0])
        return attribute


@dataclass(frozen=True, slots=True)
class Data:
    """DATA (RFC 8656 §18.4): the application payload of Send and Data."""

    data: bytes

    TYPE: ClassVar[int] = AttributeType.DATA

    def __post_init__(self) -> None:
        set_field(self, "data", check_bytes(self.data, "DATA"))

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the payload."""
        return self.data

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Wrap the payload, which may be any bytes."""
        attribute = new_instance(cls)
        set_field(attribute, "data", value)
        return attribute


@dataclass(frozen=True, slots=True)
class RequestedAddressFamily:
    """REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6, RFC 6156 §4.1.1).

    ``family`` is an ``AddressFamily`` when known. An unknown family
    decodes as a plain int, for the server to reject with a 440 error.
    """

    family: int

    TYPE: ClassVar[int] = AttributeType.REQUESTED_ADDRESS_FAMILY

    def __post_init__(self) -> None:
        _check_family(self.family, "REQUESTED-ADDRESS-FAMILY")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the family byte and three zero bytes."""
        return bytes((self.family, 0, 0, 0))

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 4-byte value, ignoring the reserved bytes."""
        check_length(value, 4, "REQUESTED-ADDRESS-FAMILY")
        attribute = new_instance(cls)
        set_field(attribute, "family", _FAMILIES.get(value[0], value[0]))
        return attribute


@dataclass(frozen=True, slots=True)
class EvenPort:
    """EVEN-PORT (RFC 8656 §18.7): ask for an even relayed port.

    ``reserve`` is the R bit: also reserve the next port up for a later
    allocation (see RESERVATION-TOKEN).
    """

    reserve: bool = False

    TYPE: ClassVar[int] = AttributeType.EVEN_PORT

    def __post_init__(self) -> None:
        check_flag(self.reserve, "EVEN-PORT reserve")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the one-byte value with the R bit set or clear."""
        return b"\x80" if self.reserve else b"\x00"

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 1-byte value, ignoring the seven RFFU bits."""
        check_length(value, 1, "EVEN-PORT")
        attribute = new_instance(cls)
        set_field(attribute, "reserve", bool(value[0] & 0x80))
        return attribute


@dataclass(frozen=True, slots=True)
class RequestedTransport:
    """REQUESTED-TRANSPORT (RFC 8656 §18.8): the relay's protocol to the peer.

    ``protocol`` is an IANA protocol number, a ``TransportProtocol`` when
    known (17 UDP, 6 TCP for RFC 6062). Any number decodes, for the server
    to reject with a 442 error.
    """

    protocol: int

    TYPE: ClassVar[int] = AttributeType.REQUESTED_TRANSPORT

    def __post_init__(self) -> None:
        check_uint(self.protocol, 8, "REQUESTED-TRANSPORT protocol")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the protocol byte and three zero bytes."""
        return bytes((self.protocol, 0, 0, 0))

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 4-byte value, ignoring the RFFU bytes."""
        check_length(value, 4, "REQUESTED-TRANSPORT")
        attribute = new_instance(cls)
        set_field(attribute, "protocol", _PROTOCOLS.get(value[0], value[0]))
        return attribute


@dataclass(frozen=True, slots=True)
class DontFragment:
    """DONT-FRAGMENT (RFC 8656 §18.9): set DF toward the peer. Empty value."""

    TYPE: ClassVar[int] = AttributeType.DONT_FRAGMENT

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the empty value."""
        return b""

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode an empty value, or raise ``StunParseError`` for any content."""
        check_length(value, 0, "DONT-FRAGMENT")
        return new_instance(cls)


@dataclass(frozen=True, slots=True)
class ReservationToken:
    """RESERVATION-TOKEN (RFC 8656 §18.10): 8 bytes naming a reserved port."""

    token: bytes

    TYPE: ClassVar[int] = AttributeType.RESERVATION_TOKEN

    def __post_init__(self) -> None:
        token = check_bytes(self.token, "RESERVATION-TOKEN", lengths=(8,))
        set_field(self, "token", token)

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the 8-byte token."""
        return self.token

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode an 8-byte value, or raise ``StunParseError``."""
        check_length(value, 8, "RESERVATION-TOKEN")
        attribute = new_instance(cls)
        set_field(attribute, "token", value)
        return attribute


@dataclass(frozen=True, slots=True)
class AdditionalAddressFamily:
    """ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11): ask for a second relayed
    address of this family.

    Only IPv6 is valid in an Allocate request, but the constructor accepts
    either ``AddressFamily`` so that tests can build the invalid case.
    Decoding accepts any family byte.
    """

    family: int

    TYPE: ClassVar[int] = AttributeType.ADDITIONAL_ADDRESS_FAMILY

    def __post_init__(self) -> None:
        _check_family(self.family, "ADDITIONAL-ADDRESS-FAMILY")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the family byte and three zero bytes."""
        return bytes((self.family, 0, 0, 0))

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 4-byte value, ignoring the reserved bytes."""
        check_length(value, 4, "ADDITIONAL-ADDRESS-FAMILY")
        attribute = new_instance(cls)
        set_field(attribute, "family", _FAMILIES.get(value[0], value[0]))
        return attribute


@dataclass(frozen=True, slots=True)
class AddressErrorCode:
    """ADDRESS-ERROR-CODE (RFC 8656 §18.12): why one family of a dual
    allocation failed (440 or 508), with a reason phrase.

    The layout is ERROR-CODE's with the family in the first byte, and decoding
    follows the same rules (see ``ErrorCodeAttribute``).
    """

    family: int
    code: int
    reason: str = ""

    TYPE: ClassVar[int] = AttributeType.ADDRESS_ERROR_CODE

    def __post_init__(self) -> None:
        _check_family(self.family, "ADDRESS-ERROR-CODE")
        check_error_code(self.code, self.reason, "ADDRESS-ERROR-CODE")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the family, the class and number, and the UTF-8 reason."""
        head = bytes((self.family, 0, self.code // 100, self.code % 100))
        return head + self.reason.encode("utf-8")

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a value, or raise ``StunParseError`` if it is under 4 bytes
        or the number is above 99."""
        code, reason = decode_error_code(value, "ADDRESS-ERROR-CODE")
        attribute = new_instance(cls)
        set_field(attribute, "family", _FAMILIES.get(value[0], value[0]))
        set_field(attribute, "code", code)
        set_field(attribute, "reason", reason)
        return attribute


@dataclass(frozen=True, slots=True)
class Icmp:
    """ICMP (RFC 8656 §18.13): an ICMP error the relay received from a peer.

    ``error_data`` is the next-hop MTU for "fragmentation needed" (ICMPv4
    type 3 code 4) and "packet too big" (ICMPv6 type 2), else zero.
    """

    icmp_type: int
    icmp_code: int
    error_data: int = 0

    TYPE: ClassVar[int] = AttributeType.ICMP

    def __post_init__(self) -> None:
        check_uint(self.icmp_type, 8, "ICMP type")
        check_uint(self.icmp_code, 8, "ICMP code")
        check_uint(self.error_data, 32, "ICMP error data")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return two reserved zero bytes, type, code and error data."""
        head = bytes((0, 0, self.icmp_type, self.icmp_code))
        return head + U32.pack(self.error_data)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode an 8-byte value, ignoring the reserved bytes."""
        check_length(value, 8, "ICMP")
        attribute = new_instance(cls)
        set_field(attribute, "icmp_type", value[2])
        set_field(attribute, "icmp_code", value[3])
        set_field(attribute, "error_data", U32.unpack_from(value, 4)[0])
        return attribute


@dataclass(frozen=True, slots=True)
class ConnectionId:
    """CONNECTION-ID (RFC 6062 §6.2.1): names one peer TCP connection."""

    connection_id: int

    TYPE: ClassVar[int] = AttributeType.CONNECTION_ID

    def __post_init__(self) -> None:
        check_uint(self.connection_id, 32, "CONNECTION-ID")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the 4-byte value."""
        return U32.pack(self.connection_id)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 4-byte value, or raise ``StunParseError``."""
        check_length(value, 4, "CONNECTION-ID")
        attribute = new_instance(cls)
        set_field(attribute, "connection_id", U32.unpack(value)[0])
        return attribute

"""Typed STUN attributes: one frozen, slotted dataclass per attribute type.

Every class has ``TYPE``, the attribute type it encodes as. Its
``encode(transaction_id)`` returns the value bytes without the attribute
header or padding, and the classmethod ``decode(value, transaction_id)``
reverses it. Constructors check their arguments and raise
``StunBuildError``. ``decode`` raises only ``StunParseError``, with the
offset relative to the start of the value (-2 for a wrong length, which
points at the attribute's length field). ``Message.get`` adds the
attribute's offset in the message.

``MessageBuilder.add_attribute(attribute)`` appends any of these objects,
and ``Message.get(type)`` and ``Message.attributes()`` return them through
``decode_attribute``. Types without a class come back as
``UnknownAttribute``.

Decoding is more lenient than building: RFC 8489 requires receivers to
accept longer text than senders may write, and TURN numbers (family,
protocol, channel) decode whatever their value so the server can send the
error response its RFC prescribes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Final, TypeAlias

from rice_fast.stun._address_attributes import (
    AlternateServer,
    ChangedAddress,
    MappedAddress,
    OtherAddress,
    ReflectedFrom,
    ResponseAddress,
    ResponseOrigin,
    SourceAddress,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
)
from rice_fast.stun._attribute_codec import (
    check_bytes,
    check_uint,
    new_instance,
    set_field,
)
from rice_fast.stun._classic_attributes import (
    ChangeRequest,
    Padding,
    Password,
    ResponsePort,
)
from rice_fast.stun._constants import AttributeType
from rice_fast.stun._ice_attributes import (
    IceControlled,
    IceControlling,
    Priority,
    UseCandidate,
)
from rice_fast.stun._stun_attributes import (
    AlternateDomain,
    ErrorCodeAttribute,
    Fingerprint,
    MessageIntegrity,
    MessageIntegritySha256,
    Nonce,
    PasswordAlgorithm,
    PasswordAlgorithms,
    Realm,
    Software,
    TransactionTransmitCounter,
    UnknownAttributes,
    Userhash,
    Username,
)
from rice_fast.stun._turn_attributes import (
    AdditionalAddressFamily,
    AddressErrorCode,
    ChannelNumber,
    ConnectionId,
    Data,
    DontFragment,
    EvenPort,
    Icmp,
    Lifetime,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
)

__all__ = [
    # RFC 8489
    "MappedAddress",
    "XorMappedAddress",
    "Username",
    "Userhash",
    "MessageIntegrity",
    "MessageIntegritySha256",
    "Fingerprint",
    "ErrorCodeAttribute",
    "Realm",
    "Nonce",
    "PasswordAlgorithms",
    "PasswordAlgorithm",
    "UnknownAttributes",
    "Software",
    "AlternateServer",
    "AlternateDomain",
    # RFC 8445
    "Priority",
    "UseCandidate",
    "IceControlled",
    "IceControlling",
    # RFC 8656, RFC 6156, RFC 6062
    "ChannelNumber",
    "Lifetime",
    "XorPeerAddress",
    "Data",
    "XorRelayedAddress",
    "RequestedAddressFamily",
    "EvenPort",
    "RequestedTransport",
    "DontFragment",
    "ReservationToken",
    "AdditionalAddressFamily",
    "AddressErrorCode",
    "Icmp",
    "ConnectionId",
    # RFC 5780, RFC 7982, RFC 3489
    "ChangeRequest",
    "ResponsePort",
    "Padding",
    "ResponseOrigin",
    "OtherAddress",
    "TransactionTransmitCounter",
    "ResponseAddress",
    "SourceAddress",
    "ChangedAddress",
    "Password",
    "ReflectedFrom",
    # Any other type
    "UnknownAttribute",
    # The registry
    "Attribute",
    "KnownAttribute",
    "ATTRIBUTE_CLASSES",
    "KNOWN_ATTRIBUTES",
    "decode_attribute",
]


@dataclass(frozen=True, slots=True)
class UnknownAttribute:
    """An attribute this library does not decode, kept as raw bytes.

    ``TYPE`` is -1 because the type differs per object: append one with
    ``MessageBuilder.add(attribute.type, attribute.value)``.
    """

    type: int
    value: bytes

    TYPE: ClassVar[int] = -1

    def __post_init__(self) -> None:
        check_uint(self.type, 16, "attribute type")
        set_field(self, "value", check_bytes(self.value, "attribute value"))

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the raw value."""
        return self.value


KnownAttribute: TypeAlias = (
    MappedAddress
    | XorMappedAddress
    | Username
    | Userhash
    | MessageIntegrity
    | MessageIntegritySha256
    | Fingerprint
    | ErrorCodeAttribute
    | Realm
    | Nonce
    | PasswordAlgorithms
    | PasswordAlgorithm
    | UnknownAttributes
    | Software
    | AlternateServer
    | AlternateDomain
    | Priority
    | UseCandidate
    | IceControlled
    | IceControlling
    | ChannelNumber
    | Lifetime
    | XorPeerAddress
    | Data
    | XorRelayedAddress
    | RequestedAddressFamily
    | EvenPort
    | RequestedTransport
    | DontFragment
    | ReservationToken
    | AdditionalAddressFamily
    | AddressErrorCode
    | Icmp
    | ConnectionId
    | ChangeRequest
    | ResponsePort
    | Padding
    | ResponseOrigin
    | OtherAddress
    | TransactionTransmitCounter
    | ResponseAddress
    | SourceAddress
    | ChangedAddress
    | Password
    | ReflectedFrom
)
"""Any object of a class in ``ATTRIBUTE_CLASSES``."""

Attribute: TypeAlias = KnownAttribute | UnknownAttribute
"""Any object that ``decode_attribute`` returns."""

_CLASSES: Final[tuple[type[KnownAttribute], ...]] = (
    MappedAddress,
    XorMappedAddress,
    Username,
    Userhash,
    MessageIntegrity,
    MessageIntegritySha256,
    Fingerprint,
    ErrorCodeAttribute,
    Realm,
    Nonce,
    PasswordAlgorithms,
    PasswordAlgorithm,
    UnknownAttributes,
    Software,
    AlternateServer,
    AlternateDomain,
    Priority,
    UseCandidate,
    IceControlled,
    IceControlling,
    ChannelNumber,
    Lifetime,
    XorPeerAddress,
    Data,
    XorRelayedAddress,
    RequestedAddressFamily,
    EvenPort,
    RequestedTransport,
    DontFragment,
    ReservationToken,
    AdditionalAddressFamily,
    AddressErrorCode,
    Icmp,
    ConnectionId,
    ChangeRequest,
    ResponsePort,
    Padding,
    ResponseOrigin,
    OtherAddress,
    TransactionTransmitCounter,
    ResponseAddress,
    SourceAddress,
    ChangedAddress,
    Password,
    ReflectedFrom,
)

_BY_TYPE: dict[int, type[KnownAttribute]] = {int(cls.TYPE): cls for cls in _CLASSES}
# Drafts before RFC 5389 used type 0x8020 for XOR-MAPPED-ADDRESS. It decodes
# with the RFC 5389 layout, as Message.xor_mapped_address() reads it.
_BY_TYPE[AttributeType.XOR_MAPPED_ADDRESS_OLD] = XorMappedAddress

ATTRIBUTE_CLASSES: Final[Mapping[int, type[KnownAttribute]]] = MappingProxyType(
    _BY_TYPE
)
"""The class that decodes each attribute type, read-only."""

# NOTE: CACHE-TIMEOUT (0x8027) has no class, because RFC 5780 registers the
# type without defining its value. It decodes as UnknownAttribute, and it is
# the one AttributeType missing from KNOWN_ATTRIBUTES.
KNOWN_ATTRIBUTES: Final[frozenset[int]] = frozenset(_BY_TYPE)
"""Every attribute type with a class here.

``Message.unknown_comprehension_required`` treats these as understood.
"""

_DECODERS: Final[dict[int, Callable[[bytes, bytes], KnownAttribute]]] = {
    attr_type: cls.decode for attr_type, cls in _BY_TYPE.items()
}


def decode_attribute(attr_type: int, value: bytes, transaction_id: bytes) -> Attribute:
    """Decode one attribute value into its typed object.

    ``transaction_id`` is the message's 12-byte transaction id, which the
    XOR address attributes need. Types without a class give an
    ``UnknownAttribute``. Raises ``StunParseError`` for a malformed value,
    with the offset relative to the start of ``value``.
    """
    decoder = _DECODERS.get(attr_type)
    if decoder is not None:
        return decoder(value, transaction_id)
    attribute = new_instance(UnknownAttribute)
    set_field(attribute, "type", attr_type)
    set_field(attribute, "value", value)
    return attribute

"""Request checks and response building for TurnServer.

The checks read attributes straight from the parsed ``Message`` and return
either the values the server needs or a ``Rejection`` naming the error
response. None of them raises for the content of a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from rice_fast.stun._codec import Message, MessageBuilder
from rice_fast.stun._constants import (
    AddressFamily,
    AttributeType,
    ErrorCode,
    MessageClass,
    TransportProtocol,
    message_type,
)
from rice_fast.stun.attributes import XorPeerAddress
from rice_fast.stun.errors import StunParseError
from rice_fast.stun.transport import Address, TransportType
from rice_fast.turn._allocations import Signer
from rice_fast.turn._server_config import TurnServerConfig

__all__ = [
    "AllocateOptions",
    "Rejection",
    "finish_response",
    "granted_lifetime",
    "read_allocate",
    "read_channel_number",
    "read_connection_id",
    "read_lifetime",
    "read_peers",
    "read_requested_family",
    "start_error",
    "start_success",
]

_FAMILIES: Final = {int(f): f for f in AddressFamily}
_MIN_CHANNEL: Final = 0x4000
# RFC 8656 §12 narrowed channels to 0x4000..0x4FFF, but RFC 5766 clients,
# coturn's among them, still bind up to 0x7FFF; accept both ranges.
_MAX_CHANNEL: Final = 0x7FFF


@dataclass(frozen=True, slots=True)
class Rejection:
    """An error response to send: the code and a reason phrase."""

    code: int
    reason: str

    @classmethod
    def of(cls, code: ErrorCode, detail: str = "") -> Rejection:
        """A rejection with the RFC reason phrase, and ``detail`` after it."""
        reason = code.reason if not detail else f"{code.reason}: {detail}"
        return cls(int(code), reason)


@dataclass(frozen=True, slots=True)
class AllocateOptions:
    """What an Allocate requests, after the RFC 8656 §7.2 checks."""

    transport: TransportProtocol
    families: tuple[AddressFamily, ...]
    even_port: bool
    reserve_next: bool
    reservation_token: bytes | None
    lifetime: int | None


def _fixed(message: Message, attr_type: int, size: int) -> bytes | Rejection | None:
    value = message.raw(attr_type)
    if value is None:
        return None
    if len(value) != size:
        name = AttributeType(attr_type).name.replace("_", "-")
        return Rejection.of(ErrorCode.BAD_REQUEST, f"{name} is malformed")
    return value


def read_allocate(
    message: Message, client_transport: TransportType, config: TurnServerConfig
) -> AllocateOptions | Rejection:
    """Check an Allocate request's attributes (RFC 8656 §7.2, RFC 6062 §5.1)."""
    bad = ErrorCode.BAD_REQUEST
    requested = _fixed(message, AttributeType.REQUESTED_TRANSPORT, 4)
    if requested is None:
        return Rejection.of(bad, "REQUESTED-TRANSPORT is missing")
    if isinstance(requested, Rejection):
        return requested
    even = _fixed(message, AttributeType.EVEN_PORT, 1)
    token = _fixed(message, AttributeType.RESERVATION_TOKEN, 8)
    family = _fixed(message, AttributeType.REQUESTED_ADDRESS_FAMILY, 4)
    additional = _fixed(message, AttributeType.ADDITIONAL_ADDRESS_FAMILY, 4)
    lifetime = read_lifetime(message)
    for value in (even, token, family, additional, lifetime):
        if isinstance(value, Rejection):
            return value
    assert not isinstance(even, Rejection)
    assert not isinstance(token, Rejection)
    assert not isinstance(family, Rejection)
    assert not isinstance(additional, Rejection)
    assert not isinstance(lifetime, Rejection)

    if requested[0] == TransportProtocol.UDP:
        transport = TransportProtocol.UDP
    elif requested[0] == TransportProtocol.TCP and config.tcp_relay:
        transport = TransportProtocol.TCP
        if client_transport is TransportType.UDP:
            return Rejection.of(bad, "TCP allocations need a TCP or TLS connection")
        if even is not None or token is not None:
            return Rejection.of(
                bad, "EVEN-PORT and RESERVATION-TOKEN do not apply to TCP"
            )
    else:
        return Rejection.of(ErrorCode.UNSUPPORTED_TRANSPORT_PROTOCOL)

    if token is not None and (
        even is not None or family is not None or additional is not None
    ):
        return Rejection.of(
            bad, "RESERVATION-TOKEN excludes EVEN-PORT and the address families"
        )
    if family is not None and additional is not None:
        return Rejection.of(
            bad,
            "REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY exclude each other",
        )
    reserve_next = even is not None and bool(even[0] & 0x80)
    if reserve_next and additional is not None:
        return Rejection.of(bad, "EVEN-PORT with R excludes ADDITIONAL-ADDRESS-FAMILY")

    families: tuple[AddressFamily, ...]
    if additional is not None:
        if additional[0] != AddressFamily.IPV6:
            return Rejection.of(bad, "ADDITIONAL-ADDRESS-FAMILY must be IPv6")
        families = (AddressFamily.IPV4, AddressFamily.IPV6)
    else:
        chosen = AddressFamily.IPV4 if family is None else _FAMILIES.get(family[0])
        if chosen is None or chosen not in config.relay_families:
            return Rejection.of(ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED)
        families = (chosen,)

    return AllocateOptions(
        transport=transport,
        families=families,
        even_port=even is not None,
        reserve_next=reserve_next,
        reservation_token=token,
        lifetime=lifetime,
    )


def read_lifetime(message: Message) -> int | Rejection | None:
    """LIFETIME in seconds, None when absent, or a 400 when malformed."""
    value = _fixed(message, AttributeType.LIFETIME, 4)
    if value is None or isinstance(value, Rejection):
        return value
    return int.from_bytes(value, "big")


def granted_lifetime(requested: int | None, config: TurnServerConfig) -> int:
    """Clamp a requested lifetime to the configured default .. maximum.

    RFC 8656 §7.2 and §8.2: the server grants the smaller of the request
    and its maximum, but never less than the default, and the default
    when the request names none. A zero LIFETIME in a Refresh is handled
    by the caller.
    """
    if requested is None:
        return config.default_lifetime
    return max(config.default_lifetime, min(requested, config.max_lifetime))


def read_requested_family(message: Message) -> AddressFamily | Rejection | None:
    """REQUESTED-ADDRESS-FAMILY of a Refresh: None when absent."""
    value = _fixed(message, AttributeType.REQUESTED_ADDRESS_FAMILY, 4)
    if value is None or isinstance(value, Rejection):
        return value
    family = _FAMILIES.get(value[0])
    if family is None:
        return Rejection.of(ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED)
    return family


def read_peers(message: Message) -> list[Address] | Rejection:
    """Every XOR-PEER-ADDRESS of a request; 400 when none or one is malformed."""
    values = message.raw_all(AttributeType.XOR_PEER_ADDRESS)
    if not values:
        return Rejection.of(ErrorCode.BAD_REQUEST, "XOR-PEER-ADDRESS is missing")
    peers: list[Address] = []
    transaction_id = message.transaction_id
    for value in values:
        try:
            peers.append(XorPeerAddress.decode(value, transaction_id).address)
        except StunParseError:
            return Rejection.of(ErrorCode.BAD_REQUEST, "XOR-PEER-ADDRESS is malformed")
    return peers


def read_channel_number(message: Message) -> int | Rejection:
    """CHANNEL-NUMBER in 0x4000..0x7FFF, or a 400 (RFC 8656 §12.2)."""
    value = _fixed(message, AttributeType.CHANNEL_NUMBER, 4)
    if value is None:
        return Rejection.of(ErrorCode.BAD_REQUEST, "CHANNEL-NUMBER is missing")
    if isinstance(value, Rejection):
        return value
    number = int.from_bytes(value[:2], "big")
    if not _MIN_CHANNEL <= number <= _MAX_CHANNEL:
        return Rejection.of(
            ErrorCode.BAD_REQUEST, "CHANNEL-NUMBER is outside 0x4000..0x7FFF"
        )
    return number


def read_connection_id(message: Message) -> int | Rejection:
    """CONNECTION-ID of a ConnectionBind request, or a 400."""
    value = _fixed(message, AttributeType.CONNECTION_ID, 4)
    if value is None:
        return Rejection.of(ErrorCode.BAD_REQUEST, "CONNECTION-ID is missing")
    if isinstance(value, Rejection):
        return value
    return int.from_bytes(value, "big")


def start_success(method: int, transaction_id: bytes) -> MessageBuilder:
    """Start a success response for ``method``."""
    return MessageBuilder(message_type(method, MessageClass.SUCCESS), transaction_id)


def start_error(
    method: int, transaction_id: bytes, rejection: Rejection
) -> MessageBuilder:
    """Start an error response for ``method`` with its ERROR-CODE."""
    builder = MessageBuilder(message_type(method, MessageClass.ERROR), transaction_id)
    builder.add_error_code(rejection.code, rejection.reason)
    return builder


def finish_response(
    builder: MessageBuilder,
    signer: Signer | None,
    software: str | None,
    *,
    fingerprint: bool,
) -> bytes:
    """Sign and finish a response.

    With ``signer`` the response gets SOFTWARE (when set), the integrity
    attribute of the request's kind and FINGERPRINT. Without one it gets
    FINGERPRINT only if ``fingerprint`` (set it when the request had one),
    which keeps responses to unauthenticated requests small.
    """
    if signer is None:
        unsigned: bytes = builder.finish(None, fingerprint=fingerprint)
        return unsigned
    if software is not None:
        builder.add_software(software)
    signed: bytes = builder.finish(signer.key, sha256=signer.sha256, fingerprint=True)
    return signed

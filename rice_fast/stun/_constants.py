"""STUN numbers: methods, classes, attribute types and error codes."""

from __future__ import annotations

import enum

__all__ = [
    "MAGIC_COOKIE",
    "FINGERPRINT_XOR",
    "HEADER_SIZE",
    "Method",
    "MessageClass",
    "AttributeType",
    "ErrorCode",
    "TransportProtocol",
    "AddressFamily",
    "KNOWN_ATTRIBUTES",
    "message_type",
    "method_of",
    "class_of",
]

MAGIC_COOKIE = 0x2112A442
FINGERPRINT_XOR = 0x5354554E
HEADER_SIZE = 20


class Method(enum.IntEnum):
    """STUN methods (RFC 8489, RFC 8656 and RFC 6062)."""

    BINDING = 0x001
    SHARED_SECRET = 0x002  # RFC 3489 only
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009
    CONNECT = 0x00A
    CONNECTION_BIND = 0x00B
    CONNECTION_ATTEMPT = 0x00C


class MessageClass(enum.IntEnum):
    """The two class bits of the message type."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


class AttributeType(enum.IntEnum):
    """Attribute types; values below 0x8000 are comprehension-required."""

    MAPPED_ADDRESS = 0x0001
    RESPONSE_ADDRESS = 0x0002  # RFC 3489
    CHANGE_REQUEST = 0x0003  # RFC 5780
    SOURCE_ADDRESS = 0x0004  # RFC 3489
    CHANGED_ADDRESS = 0x0005  # RFC 3489
    USERNAME = 0x0006
    PASSWORD = 0x0007  # RFC 3489
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    REFLECTED_FROM = 0x000B  # RFC 3489
    CHANNEL_NUMBER = 0x000C
    LIFETIME = 0x000D
    XOR_PEER_ADDRESS = 0x0012
    DATA = 0x0013
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_ADDRESS_FAMILY = 0x0017
    EVEN_PORT = 0x0018
    REQUESTED_TRANSPORT = 0x0019
    DONT_FRAGMENT = 0x001A
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    PASSWORD_ALGORITHM = 0x001D
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    RESERVATION_TOKEN = 0x0022
    PRIORITY = 0x0024
    USE_CANDIDATE = 0x0025
    PADDING = 0x0026  # RFC 5780
    RESPONSE_PORT = 0x0027  # RFC 5780
    CONNECTION_ID = 0x002A
    ADDITIONAL_ADDRESS_FAMILY = 0x8000
    ADDRESS_ERROR_CODE = 0x8001
    PASSWORD_ALGORITHMS = 0x8002
    ALTERNATE_DOMAIN = 0x8003
    ICMP = 0x8004
    XOR_MAPPED_ADDRESS_OLD = 0x8020  # drafts before RFC 5389
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    TRANSACTION_TRANSMIT_COUNTER = 0x8025  # RFC 7982
    CACHE_TIMEOUT = 0x8027  # RFC 5780
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029
    ICE_CONTROLLING = 0x802A
    RESPONSE_ORIGIN = 0x802B  # RFC 5780
    OTHER_ADDRESS = 0x802C  # RFC 5780


class ErrorCode(enum.IntEnum):
    """ERROR-CODE values of RFC 8489, RFC 8445, RFC 8656 and RFC 6062."""

    TRY_ALTERNATE = 300
    BAD_REQUEST = 400
    UNAUTHENTICATED = 401
    FORBIDDEN = 403
    MOBILITY_FORBIDDEN = 405
    UNKNOWN_ATTRIBUTE = 420
    ALLOCATION_MISMATCH = 437
    STALE_NONCE = 438
    ADDRESS_FAMILY_NOT_SUPPORTED = 440
    WRONG_CREDENTIALS = 441
    UNSUPPORTED_TRANSPORT_PROTOCOL = 442
    PEER_ADDRESS_FAMILY_MISMATCH = 443
    CONNECTION_ALREADY_EXISTS = 446
    CONNECTION_TIMEOUT_OR_FAILURE = 447
    ALLOCATION_QUOTA_REACHED = 486
    ROLE_CONFLICT = 487
    SERVER_ERROR = 500
    INSUFFICIENT_CAPACITY = 508

    @property
    def reason(self) -> str:
        """The reason phrase the RFCs suggest for this code."""
        return _REASONS[self]


_REASONS = {
    ErrorCode.TRY_ALTERNATE: "Try Alternate",
    ErrorCode.BAD_REQUEST: "Bad Request",
    ErrorCode.UNAUTHENTICATED: "Unauthenticated",
    ErrorCode.FORBIDDEN: "Forbidden",
    ErrorCode.MOBILITY_FORBIDDEN: "Mobility Forbidden",
    ErrorCode.UNKNOWN_ATTRIBUTE: "Unknown Attribute",
    ErrorCode.ALLOCATION_MISMATCH: "Allocation Mismatch",
    ErrorCode.STALE_NONCE: "Stale Nonce",
    ErrorCode.ADDRESS_FAMILY_NOT_SUPPORTED: "Address Family not Supported",
    ErrorCode.WRONG_CREDENTIALS: "Wrong Credentials",
    ErrorCode.UNSUPPORTED_TRANSPORT_PROTOCOL: "Unsupported Transport Protocol",
    ErrorCode.PEER_ADDRESS_FAMILY_MISMATCH: "Peer Address Family Mismatch",
    ErrorCode.CONNECTION_ALREADY_EXISTS: "Connection Already Exists",
    ErrorCode.CONNECTION_TIMEOUT_OR_FAILURE: "Connection Timeout or Failure",
    ErrorCode.ALLOCATION_QUOTA_REACHED: "Allocation Quota Reached",
    ErrorCode.ROLE_CONFLICT: "Role Conflict",
    ErrorCode.SERVER_ERROR: "Server Error",
    ErrorCode.INSUFFICIENT_CAPACITY: "Insufficient Capacity",
}


class TransportProtocol(enum.IntEnum):
    """REQUESTED-TRANSPORT protocol numbers (IANA protocol numbers)."""

    TCP = 6
    UDP = 17


class AddressFamily(enum.IntEnum):
    """Address family byte of address attributes and of RFC 6156/8656."""

    IPV4 = 0x01
    IPV6 = 0x02


KNOWN_ATTRIBUTES: frozenset[int] = frozenset(int(t) for t in AttributeType)


def message_type(method: int, message_class: int) -> int:
    """Combine a 12-bit method and a 2-bit class into the 14-bit message type."""
    if not 0 <= method <= 0xFFF:
        raise ValueError(f"STUN method {method:#x} is outside 0x000..0xfff")
    if not 0 <= message_class <= 3:
        raise ValueError(f"STUN class {message_class} is outside 0..3")
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((message_class & 1) << 4)
        | ((message_class & 2) << 7)
    )


def method_of(message_type: int) -> int:
    """Return the method bits of a message type."""
    return (
        (message_type & 0x000F)
        | ((message_type & 0x00E0) >> 1)
        | ((message_type & 0x3E00) >> 2)
    )


def class_of(message_type: int) -> int:
    """Return the class bits of a message type."""
    return ((message_type >> 4) & 1) | ((message_type >> 7) & 2)

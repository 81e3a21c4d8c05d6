"""STUN (RFC 8489, RFC 5389): message codec, attributes and credentials."""

from rice_fast.stun._codec import (
    IntegrityKey,
    Message,
    MessageBuilder,
    frame_error,
    is_stun,
    new_transaction_id,
    parse,
)
from rice_fast.stun._constants import (
    FINGERPRINT_XOR,
    HEADER_SIZE,
    KNOWN_ATTRIBUTES,
    MAGIC_COOKIE,
    AddressFamily,
    AttributeType,
    ErrorCode,
    MessageClass,
    Method,
    TransportProtocol,
    class_of,
    message_type,
    method_of,
)
from rice_fast.stun.errors import StunBuildError, StunError, StunParseError

__all__ = [
    "FINGERPRINT_XOR",
    "HEADER_SIZE",
    "KNOWN_ATTRIBUTES",
    "MAGIC_COOKIE",
    "AddressFamily",
    "AttributeType",
    "ErrorCode",
    "IntegrityKey",
    "Message",
    "MessageBuilder",
    "MessageClass",
    "Method",
    "StunBuildError",
    "StunError",
    "StunParseError",
    "TransportProtocol",
    "class_of",
    "frame_error",
    "is_stun",
    "message_type",
    "method_of",
    "new_transaction_id",
    "parse",
]

"""The ICE attributes of RFC 8445 §16.1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from rice_fast.stun._attribute_codec import (
    U32,
    U64,
    check_length,
    check_uint,
    new_instance,
    set_field,
)
from rice_fast.stun._constants import AttributeType

__all__ = ["IceControlled", "IceControlling", "Priority", "UseCandidate"]


@dataclass(frozen=True, slots=True)
class Priority:
    """PRIORITY (RFC 8445 §16.1): the priority of a peer-reflexive candidate
    learned from this check, a 32-bit unsigned integer."""

    priority: int

    TYPE: ClassVar[int] = AttributeType.PRIORITY

    def __post_init__(self) -> None:
        check_uint(self.priority, 32, "PRIORITY")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the 4-byte value."""
        return U32.pack(self.priority)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode a 4-byte value, or raise ``StunParseError``."""
        check_length(value, 4, "PRIORITY")
        attribute = new_instance(cls)
        set_field(attribute, "priority", U32.unpack(value)[0])
        return attribute


@dataclass(frozen=True, slots=True)
class UseCandidate:
    """USE-CANDIDATE (RFC 8445 §16.1): the controlling agent nominates the
    pair. The value is empty."""

    TYPE: ClassVar[int] = AttributeType.USE_CANDIDATE

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the empty value."""
        return b""

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode an empty value, or raise ``StunParseError`` for any content."""
        check_length(value, 0, "USE-CANDIDATE")
        return new_instance(cls)


@dataclass(frozen=True, slots=True)
class IceControlled:
    """ICE-CONTROLLED (RFC 8445 §16.1): sent by the controlled agent, with its
    64-bit tie-breaker."""

    tie_breaker: int

    TYPE: ClassVar[int] = AttributeType.ICE_CONTROLLED

    def __post_init__(self) -> None:
        check_uint(self.tie_breaker, 64, "ICE-CONTROLLED tie-breaker")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the 8-byte tie-breaker."""
        return U64.pack(self.tie_breaker)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode an 8-byte value, or raise ``StunParseError``."""
        check_length(value, 8, "ICE-CONTROLLED")
        attribute = new_instance(cls)
        set_field(attribute, "tie_breaker", U64.unpack(value)[0])
        return attribute


@dataclass(frozen=True, slots=True)
class IceControlling:
    """ICE-CONTROLLING (RFC 8445 §16.1): sent by the controlling agent, with
    its 64-bit tie-breaker."""

    tie_breaker: int

    TYPE: ClassVar[int] = AttributeType.ICE_CONTROLLING

    def __post_init__(self) -> None:
        check_uint(self.tie_breaker, 64, "ICE-CONTROLLING tie-breaker")

    def encode(self, transaction_id: bytes) -> bytes:
        """Return the 8-byte tie-breaker."""
        return U64.pack(self.tie_breaker)

    @classmethod
    def decode(cls, value: bytes, transaction_id: bytes) -> Self:
        """Decode an 8-byte value, or raise ``StunParseError``."""
        check_length(value, 8, "ICE-CONTROLLING")
        attribute = new_instance(cls)
        set_field(attribute, "tie_breaker", U64.unpack(value)[0])
        return attribute

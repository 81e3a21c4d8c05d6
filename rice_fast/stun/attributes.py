"""Typed STUN attributes (placeholder until the full set lands)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rice_fast.stun._constants import KNOWN_ATTRIBUTES

__all__ = ["KNOWN_ATTRIBUTES", "UnknownAttribute", "decode_attribute"]


@dataclass(frozen=True, slots=True)
class UnknownAttribute:
    """An attribute this library does not decode, kept as raw bytes."""

    type: int
    value: bytes

    TYPE: ClassVar[int] = -1

    def encode(self, transaction_id: bytes) -> bytes:
        return self.value


def decode_attribute(
    attr_type: int, value: bytes, transaction_id: bytes
) -> UnknownAttribute:
    return UnknownAttribute(attr_type, value)

"""Transport types and the values a sans-IO STUN endpoint hands its caller."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Address", "TransportType", "Transmit", "WaitUntil"]

Address = tuple[str, int]
"""A ``(host, port)`` pair as the socket module uses it."""


class TransportType(enum.Enum):
    """The transport a STUN message travels over."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"

    @property
    def reliable(self) -> bool:
        """Whether the transport delivers in order without loss (TCP, TLS)."""
        return self is not TransportType.UDP


@dataclass(frozen=True, slots=True)
class Transmit:
    """One message for the caller to send from ``source`` to ``destination``."""

    transport: TransportType
    source: Address
    destination: Address
    data: bytes


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Nothing to do before ``deadline`` (monotonic seconds) unless input arrives."""

    deadline: float

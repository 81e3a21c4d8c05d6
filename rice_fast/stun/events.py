"""Events a StunAgent reports about its transactions."""

from __future__ import annotations

from dataclasses import dataclass

from rice_fast.stun._codec import Message
from rice_fast.stun.transport import Address

__all__ = [
    "StunEvent",
    "TransactionCancelled",
    "TransactionFailed",
    "TransactionSucceeded",
    "TransactionTimedOut",
]


@dataclass(frozen=True, slots=True)
class StunEvent:
    """Base class of the StunAgent events.

    ``transaction_id`` is always the id that ``send_request`` returned, even
    when the agent resent the request under new ids after a 401 or 438.
    """

    transaction_id: bytes


@dataclass(frozen=True, slots=True)
class TransactionSucceeded(StunEvent):
    """A success response arrived and passed the integrity check.

    ``rtt`` is the time in seconds from the first transmission of the
    request that this response matches to the arrival of the response.
    """

    response: Message
    remote: Address
    rtt: float


@dataclass(frozen=True, slots=True)
class TransactionFailed(StunEvent):
    """An error response that is final, after the agent's own 401/438 retries.

    ``code`` is the ERROR-CODE number (0 when the response had none or
    failed its integrity check over TCP or TLS) and ``reason`` its phrase
    or a description of the failure.
    """

    response: Message
    code: int
    reason: str
    remote: Address


@dataclass(frozen=True, slots=True)
class TransactionTimedOut(StunEvent):
    """No acceptable response arrived before the final timeout."""

    remote: Address


@dataclass(frozen=True, slots=True)
class TransactionCancelled(StunEvent):
    """The caller cancelled the transaction with ``StunAgent.cancel``."""

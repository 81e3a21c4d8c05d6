"""Errors raised by the TURN layer."""

from __future__ import annotations

from rice_fast.stun.errors import StunError, StunParseError

__all__ = ["TurnError", "ChannelDataError", "FramingError"]


class TurnError(StunError):
    """Base class of the TURN layer's errors."""


class ChannelDataError(StunParseError, TurnError):
    """Bytes that are not a valid ChannelData message (RFC 8656 §12.4)."""


class FramingError(StunParseError, TurnError):
    """A byte stream that is neither STUN nor ChannelData at a frame start.

    The stream cannot be resynchronised after this: the connection should
    be closed.
    """

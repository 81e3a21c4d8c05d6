"""Errors raised by the STUN layer."""

from __future__ import annotations

__all__ = ["StunError", "StunParseError", "StunBuildError", "CredentialError"]


class StunError(Exception):
    """Base class of every error the STUN layer raises."""


class StunParseError(StunError, ValueError):
    """Bytes that are not a valid STUN message or attribute.

    ``reason`` is a short description and ``offset`` the byte offset in the
    input where the problem was found.
    """

    reason: str
    offset: int

    def __init__(self, reason: str, offset: int = 0) -> None:
        super().__init__(f"invalid STUN message at byte {offset}: {reason}")
        self.reason = reason
        self.offset = offset

    def __reduce__(self) -> tuple[type[StunParseError], tuple[str, int]]:
        return (type(self), (self.reason, self.offset))


class StunBuildError(StunError, ValueError):
    """A message or attribute that cannot be built as requested."""


class CredentialError(StunError, ValueError):
    """A username, realm, password or nonce that cannot be used as a credential.

    The message names the rule that failed and, for text, the position and
    code point of the offending character, but never the text itself.
    """

"""Errors raised by the ICE layer."""

from __future__ import annotations

__all__ = ["IceError", "CandidateError", "CandidateParseError"]

# Lines quoted in error messages are cut to this many characters, so a
# megabyte of garbage from a signalling channel does not end up in a log.
# A line at most three characters longer is quoted whole, because cutting
# it and appending "..." would not make it shorter.
_MAX_QUOTED_LINE = 100


class IceError(Exception):
    """Base class of every error the ICE layer raises."""


class CandidateError(IceError, ValueError):
    """A candidate field, or an argument of a priority or foundation helper, is invalid.

    ``field`` names the field or argument (``"component"``, ``"priority"``) and
    ``reason`` describes what is wrong with its value.
    """

    field: str
    reason: str

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid candidate {field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[CandidateError], tuple[str, str]]:
        return (type(self), (self.field, self.reason))


class CandidateParseError(CandidateError):
    """An SDP ``candidate`` line that cannot be parsed.

    ``line`` is the input cut to about 100 characters, ``field`` names the
    field that failed (``"port"``, ``"raddr"``, ``"extensions"``) and
    ``reason`` describes the problem.
    """

    line: str

    def __init__(self, line: str, field: str, reason: str) -> None:
        if len(line) > _MAX_QUOTED_LINE + 3:
            line = line[:_MAX_QUOTED_LINE] + "..."
        IceError.__init__(self, f"invalid candidate line {line!r}: {field}: {reason}")
        self.line = line
        self.field = field
        self.reason = reason

    def __reduce__(  # type: ignore[override]
        self,
    ) -> tuple[type[CandidateParseError], tuple[str, str, str]]:
        return (type(self), (self.line, self.field, self.reason))

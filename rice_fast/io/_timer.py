"""One asyncio timer per state machine, armed at the machine's deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["DeadlineTimer"]


class DeadlineTimer:
    """A single ``loop.call_at`` handle that follows a moving deadline.

    ``arm(deadline)`` keeps the pending handle when the deadline is
    unchanged, and otherwise cancels it and schedules a new one, so a state
    machine never has more than one timer. Deadlines are absolute
    ``loop.time()`` values, the clock the drivers pass to the sans-IO code
    as ``now``.
    """

    __slots__ = ("_callback", "_deadline", "_handle", "_loop")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._deadline: float | None = None

    @property
    def deadline(self) -> float | None:
        """The deadline of the pending handle, or None when none is armed."""
        return self._deadline

    def arm(self, deadline: float | None) -> None:
        """Schedule the callback at ``deadline``; None cancels the timer."""
        if deadline is None:
            self.cancel()
            return
        if self._handle is not None and deadline == self._deadline:
            return
        self.cancel()
        self._deadline = deadline
        self._handle = self._loop.call_at(deadline, self._fire)

    def cancel(self) -> None:
        """Cancel the pending handle, if any."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._deadline = None

    def _fire(self) -> None:
        # Forget the handle before the callback runs, so that re-arming at
        # the same deadline (a wake-up a hair early) schedules a new one.
        self._handle = None
        self._deadline = None
        self._callback()

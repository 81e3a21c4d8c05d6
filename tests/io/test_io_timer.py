"""DeadlineTimer: one loop.call_at handle that follows a deadline."""

from __future__ import annotations

import asyncio

from rice_fast.io import DeadlineTimer


async def test_same_deadline_keeps_handle() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    timer = DeadlineTimer(loop, lambda: fired.append(loop.time()))
    deadline = loop.time() + 0.01

    timer.arm(deadline)
    first = timer._handle
    timer.arm(deadline)

    assert timer._handle is first
    assert timer.deadline == deadline
    await asyncio.sleep(0.05)
    assert len(fired) == 1
    assert timer.deadline is None


async def test_new_deadline_cancels_old_handle() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    timer = DeadlineTimer(loop, lambda: fired.append("fired"))

    timer.arm(loop.time() + 0.01)
    old = timer._handle
    timer.arm(loop.time() + 0.02)

    assert old is not None
    assert old.cancelled()
    await asyncio.sleep(0.06)
    assert fired == ["fired"]


async def test_none_cancels() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    timer = DeadlineTimer(loop, lambda: fired.append("fired"))

    timer.arm(loop.time() + 0.01)
    timer.arm(None)

    assert timer.deadline is None
    await asyncio.sleep(0.03)
    assert fired == []


async def test_rearm_same_deadline_after_fire() -> None:
    loop = asyncio.get_running_loop()
    fired: list[int] = []
    timer: DeadlineTimer

    def callback() -> None:
        fired.append(len(fired))
        if len(fired) == 1:
            # A callback that re-arms at the deadline that just passed (a
            # wake-up a hair early) must get a new handle, not be ignored.
            timer.arm(deadline)

    timer = DeadlineTimer(loop, callback)
    deadline = loop.time() + 0.01
    timer.arm(deadline)
    await asyncio.sleep(0.05)

    assert fired == [0, 1]

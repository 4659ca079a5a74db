"""The scheduler's time: read it, and wait on it for an event or a deadline.

Every timer of the lifecycle (idle unloads, hold and drain bounds, the start timeout,
the sleep and wake bounds, each request's wait, the retry backoff) is a deadline that
the scheduling pass works out on this clock; the scheduler then waits for its next event
or the nearest deadline. The host runs on `MonotonicClock`. Tests run on a clock they
move by hand (tests/lifecycle/clock.py), so no test waits for wall-clock time to pass
and none depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> float:
        """Now, in seconds (monotonic: only differences mean anything)."""
        ...

    async def wait(self, event: asyncio.Event, deadline: float | None) -> None:
        """Return once `event` is set or this clock reaches `deadline` (None: no deadline)."""
        ...


class MonotonicClock:
    """time.monotonic, with the event loop's own timers for deadlines."""

    def __call__(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, deadline: float | None) -> None:
        timeout = None if deadline is None else max(0.0, deadline - self())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

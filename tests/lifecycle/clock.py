"""A clock for the scheduler that moves only when a test moves it (llmhost.lifecycle.clock).

Every lifecycle timer is a deadline on the scheduler's clock: a test advances this one
past a bound and waits for the pass that follows, instead of sleeping and hoping the
machine was fast enough.
"""

from __future__ import annotations

import asyncio
import weakref


class ManualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        # Every event anyone has waited on: a waiter between two waits (the scheduler
        # between passes) must see the time move too.
        self._events: weakref.WeakSet[asyncio.Event] = weakref.WeakSet()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time on and wake whoever waits on this clock (the scheduler runs a pass)."""
        self.now += seconds
        for event in list(self._events):
            event.set()

    async def wait(self, event: asyncio.Event, deadline: float | None) -> None:
        self._events.add(event)
        if deadline is not None and self.now >= deadline:
            return
        await event.wait()

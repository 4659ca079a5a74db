"""A clock for the scheduler that moves only when a test moves it (llmhost.lifecycle.clock).

Every lifecycle timer is a deadline on the scheduler's clock: a test advances this one
past a bound and waits for the pass that follows, instead of sleeping and hoping the
machine was fast enough.
"""

from __future__ import annotations

import asyncio


class ManualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._waiting: set[asyncio.Event] = set()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time on and wake whoever waits on this clock (the scheduler runs a pass)."""
        self.now += seconds
        for event in list(self._waiting):
            event.set()

    async def wait(self, event: asyncio.Event, deadline: float | None) -> None:
        if deadline is not None and self.now >= deadline:
            return
        self._waiting.add(event)
        try:
            await event.wait()
        finally:
            self._waiting.discard(event)

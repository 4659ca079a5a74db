"""The small interface the lifecycle manager drives; one implementation per route kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from llmhost.config import HostConfig, RouteConfig


class LoadFailed(RuntimeError):
    """A backend's `start` failed; the message says why in one line, meant for users."""


class Backend(Protocol):
    """One loaded model. Created stopped; `start` loads it, `stop` frees everything it holds.

    `start` and `stop` may take minutes and must not block the event loop (run the slow
    parts in a thread). `stop` is called exactly once after a `start`, even a failed or
    cancelled one, and must be safe then.
    """

    route: RouteConfig

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def failure(self) -> str | None:
        """Why the loaded model can no longer serve (its engine died), or None."""
        ...


BackendFactory = Callable[[RouteConfig, HostConfig], Backend]

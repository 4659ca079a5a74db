"""The image queue: how image jobs take turns on the GPU.

This is the one place image work is serialized: one job at a time across all diffusion
routes (the turn), a bounded number waiting per route (full: 503 with Retry-After), and
a job whose client left gives up its place and never starts. Created in the app's
lifespan and held on app.state.image_queue. (A pipeline's own lock only keeps `stop` from
freeing it under a running job; the queue never lets two jobs reach it.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.requests import Request

from llmhost.config import RouteConfig
from llmhost.errors import Overloaded


class QueueFull(Overloaded):
    """The route's image queue is full (counted as an "overloaded" refusal in /metrics)."""


@dataclass
class ImageQueue:
    """Jobs waiting per route, and the one GPU turn all jobs share."""

    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: dict[str, int] = field(default_factory=dict)
    job_seconds: dict[str, float] = field(default_factory=dict)  # recent duration, for Retry-After

    @contextmanager
    def place(self, route: RouteConfig) -> Iterator[Place]:
        """A place in the route's queue until the job gets its turn (or gives up)."""
        waiting = self.waiting.get(route.name, 0)
        limit = route.pipeline.max_queue
        if waiting >= limit:
            per_job = self.job_seconds.get(route.name, 10.0)
            raise QueueFull(
                f"{waiting} image jobs are already waiting for {route.primary_id} "
                f"(max_queue is {limit}); try again shortly.",
                retry_after=max(1.0, (waiting + 1) * per_job),
            )
        self.waiting[route.name] = waiting + 1
        place = Place(self, route.name)
        try:
            yield place
        finally:
            place.leave()

    def record(self, route: RouteConfig, seconds: float) -> None:
        last = self.job_seconds.get(route.name)
        self.job_seconds[route.name] = seconds if last is None else 0.7 * last + 0.3 * seconds


@dataclass
class Place:
    queue: ImageQueue
    route: str
    held: bool = True

    def leave(self) -> None:
        if self.held:
            self.held = False
            self.queue.waiting[self.route] -= 1


def image_queue(request: Request) -> ImageQueue:
    queue: ImageQueue = request.app.state.image_queue
    return queue

"""What feeds the scheduler from the background: the routes' estimated memory needs
(llmhost.estimate), vLLM's answer on sleep mode for this machine, and prewarm loads.

Each runs as a task off the pass, in a worker thread where it blocks, and hands its
result to the scheduler's context (llmhost.lifecycle.context) with a poke: the pass
acts on it. The manager (llmhost.lifecycle.manager) starts them at start-up and reload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

from llmhost.config import Catalog, RouteConfig
from llmhost.lifecycle.scheduler import Scheduler
from llmhost.lifecycle.sizing import wants_estimate
from llmhost.lifecycle.slot import Lease, Slot
from llmhost.lifecycle.standby import StandbyPlatform

log = logging.getLogger("llmhost.lifecycle")

# A route's estimated GPU need in bytes (llmhost.estimate), None when unknown. Called in a
# worker thread: it may read config files from the model cache.
Estimator = Callable[[RouteConfig], "int | None"]
# Why this platform has no sleep mode, None when it has one (called in a worker thread:
# the app's imports vLLM's platform detection, which takes seconds).
StandbyQuery = Callable[[], "str | None"]
# How long the standby query waits for what it runs after (the background imports).
STANDBY_AFTER_SECONDS = 300


class BackgroundInputs:
    def __init__(
        self,
        scheduler: Scheduler,
        lease: Callable[[str], AbstractAsyncContextManager[Lease]],
        *,
        estimator: Estimator | None,
        standby_query: StandbyQuery,
        standby_after: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self._scheduler = scheduler
        self._lease = lease  # ModelManager.lease: a prewarm is a request that does nothing
        self._estimator = estimator if estimator is not None else estimate_need
        self._standby_query = standby_query
        # Awaited before the query runs (the app: its background imports are done, since two
        # threads importing vLLM at once can deadlock), on the loop, holding no worker thread.
        self._standby_after = standby_after
        self._platform_asked = False
        self._catalog: Catalog | None = None  # the latest, for the query's warning
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def estimate_needs(self) -> None:
        """Estimate what routes need (under `fit` each auto-sized one, and every resident
        route not fixed in size: llmhost.lifecycle.sizing.wants_estimate), off the event loop."""
        ctx = self._scheduler.ctx
        slots = [
            s
            for s in ctx.slots.values()
            if wants_estimate(s.route, ctx.host.policy)
            and s.estimated_bytes is None
            and not s.estimate_pending
        ]
        if not slots:
            return
        for slot in slots:
            slot.estimate_pending = True
        self.spawn(self._estimate(slots), "estimate-needs")

    async def _estimate(self, slots: list[Slot]) -> None:
        for slot in slots:
            route = slot.route
            try:
                estimate = await asyncio.to_thread(self._estimator, route)
            except Exception as exc:  # an estimate is advice: never fatal
                log.warning("could not estimate the memory need of %s: %s", route.primary_id, exc)
                estimate = None
            if slot.route is route:
                slot.estimated_bytes = estimate
            slot.estimate_pending = False
            self._scheduler.poke()

    def ask_platform(self, catalog: Catalog) -> None:
        """Once a route asks for standby: ask the platform whether it has a sleep mode, and
        say so once if it has none (those routes then swap by shutdown)."""
        self._catalog = catalog
        if self._platform_asked or not any(r.standby == "sleep" for r in catalog.routes.values()):
            return
        self._platform_asked = True
        self.spawn(self._ask(), "standby-query")

    async def _ask(self) -> None:
        if self._standby_after is not None:
            try:
                await asyncio.wait_for(self._standby_after(), STANDBY_AFTER_SECONDS)
            except asyncio.TimeoutError:
                log.warning(
                    "engine libraries still importing after %d s: asking about standby now",
                    STANDBY_AFTER_SECONDS,
                )
        try:
            problem = await asyncio.to_thread(self._standby_query)
        except Exception as exc:
            problem = f"could not tell whether this platform has a sleep mode: {exc}"
        self._scheduler.ctx.standby = StandbyPlatform(known=True, problem=problem)
        if problem is not None and self._catalog is not None:
            routes = ", ".join(n for n, r in self._catalog.routes.items() if r.standby == "sleep")
            log.warning(
                "standby requested for %s but unavailable: %s; they swap by shutdown", routes, problem
            )
        self._scheduler.poke()

    def prewarm(self, names: Iterable[str]) -> None:
        """Load these routes in the background; start-up does not wait for them."""
        for name in names:
            self.spawn(self._prewarm_one(name), f"prewarm-{name}")

    async def _prewarm_one(self, name: str) -> None:
        log.info("prewarm: loading %s", name)
        try:
            async with self._lease(name):
                pass
        except Exception as exc:  # the failure is already logged and visible in /stats
            log.warning("prewarm of %s did not finish: %s", name, getattr(exc, "message", exc))


def estimate_need(route: RouteConfig) -> int | None:
    """The default estimator: llmhost.estimate, from the files in the model cache."""
    from llmhost.estimate import estimate_route

    return estimate_route(route).need_bytes

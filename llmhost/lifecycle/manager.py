"""The one owner of every load and unload decision: the manager's public API.

Concurrency model (read this before changing anything here; docs/lifecycle.md has more):

* Request handlers never look at a model's state to decide anything. They call
  `lease(route)`, which queues a ticket and awaits it; the ticket resolves to a
  `Lease` once the model is ready, and the lease is released when the request's
  last byte has gone out (or its client went away).
* One scheduler task (llmhost.lifecycle.scheduler) owns every state change. Poked by
  any event (a new ticket, a released lease, a finished GPU operation, a timer), it runs
  a synchronous pass over all models: no locks, no races between deciding and acting.
  Estimates, vLLM's answer on standby and prewarm feed it (llmhost.lifecycle.inputs).
* The GPU work (llmhost.lifecycle.operations) runs as one operation at a time, so
  free-memory readings before and after belong to exactly one model; it returns an
  outcome, which the scheduler applies to the slot. Its slow parts run off the event
  loop inside the backend; `/healthz` and model lists stay instant.
* Eviction stops new leases for the victim, waits for its leases to drain (up to
  `drain_timeout_seconds`), then unloads. A resident model keeps serving while it is
  busy, for at most `max_hold_seconds` after another model started waiting: no
  thrash between two busy routes, no starvation of either.
* The one shortcut: `acquire` on a model that is ready, under its `max_in_flight` and
  with nobody queued gets its lease at once, without a ticket and a poke of the
  scheduler: docs/performance.md counts that round trip in the extra CPU per request
  llmhost spent over bare vLLM on a warm route, and recommends skipping it.
  It grants through `Scheduler.grant`, the same method the pass grants tickets with,
  so the rules for a lease live in one place and no state changes outside the scheduler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

from llmhost.backends import heap
from llmhost.backends.base import Backend, BackendFactory
from llmhost.config import Catalog, HostConfig
from llmhost.errors import ModelNotFound, Overloaded, RouteNotFound, ShuttingDown
from llmhost.gpu.margin import EngineMargins
from llmhost.gpu.monitor import GpuMonitor
from llmhost.lifecycle.bounds import request_wait_bound
from llmhost.lifecycle.clock import Clock, MonotonicClock
from llmhost.lifecycle.context import Preflight
from llmhost.lifecycle.inputs import BackgroundInputs, Estimator, StandbyQuery
from llmhost.lifecycle.reconfigure import apply_catalog
from llmhost.lifecycle.scheduler import Scheduler
from llmhost.lifecycle.slot import Lease, Slot, Ticket
from llmhost.lifecycle.state import ModelState, has_engine
from llmhost.lifecycle.supervision import refuse_all, stop_engines, unavailable, why_it_ended

log = logging.getLogger("llmhost.lifecycle")


class ModelManager:
    def __init__(
        self,
        catalog: Catalog,
        backend_factory: BackendFactory,
        gpu: GpuMonitor,
        *,
        clock: Clock | None = None,
        estimator: Estimator | None = None,
        preflight: Preflight | None = None,
        standby_query: StandbyQuery,
        standby_after: Callable[[], Awaitable[None]] | None = None,
        margins: EngineMargins | None = None,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.catalog = catalog
        # Why the scheduler task ended (None: it runs). Then every request gets 503 and
        # `on_fatal` is called once: the host must exit for systemd to restart it.
        self.failure: str | None = None
        self.scheduler_ended = asyncio.Event()
        self._on_fatal = on_fatal
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self.slots: dict[str, Slot] = {name: Slot(route) for name, route in catalog.routes.items()}
        self._scheduler = Scheduler(
            catalog.host,
            self.slots,
            backend_factory,
            gpu,
            clock=self._clock,
            preflight=preflight,
            route_changed=self._route_changed,
            margins=margins,
        )
        self._inputs = BackgroundInputs(
            self._scheduler,
            self.lease,
            estimator=estimator,
            standby_query=standby_query,
            standby_after=standby_after,
        )
        self._loop_task: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None

    @property
    def host(self) -> HostConfig:
        return self._scheduler.ctx.host

    def start(self) -> None:
        self._scheduler.ctx.max_wait = request_wait_bound(self.catalog)
        self._loop_task = asyncio.create_task(self._scheduler.run(), name="llmhost-scheduler")
        self._loop_task.add_done_callback(self._scheduler_stopped)
        self._inputs.estimate_needs()
        self._inputs.ask_platform(self.catalog)
        # Resident routes load first: their tickets are the oldest, so they go before any
        # request and before [host] prewarm (docs/lifecycle.md, "Resident routes").
        self.prewarm(name for name, route in self.catalog.routes.items() if route.resident)

    def _scheduler_stopped(self, task: asyncio.Task[None]) -> None:
        """The scheduler task ended: cancelled by `close` at the very end, or an error that
        escaped the pass (llmhost.lifecycle.supervision)."""
        self.scheduler_ended.set()
        if task.cancelled() and self._close_task is not None:
            return
        self.failure, error = why_it_ended(task)
        log.critical("%s; no model can be loaded or unloaded any more", self.failure, exc_info=error)
        refuse_all(self.slots, self.failure)
        if self._on_fatal is not None:
            self._on_fatal(self.failure)

    def _route_changed(self) -> None:  # a reloaded route took its new settings
        self._inputs.estimate_needs()

    def prewarm(self, names: Iterable[str]) -> None:
        """Load these routes in the background; start-up does not wait for them."""
        self._inputs.prewarm(names)

    @asynccontextmanager
    async def lease(self, route_name: str) -> AsyncIterator[Lease]:
        """Wait until `route_name` is ready and hold it for the duration of the block."""
        lease = await self.acquire(route_name)
        try:
            yield lease
        finally:
            self.release(lease)

    async def acquire(self, route_name: str) -> Lease:
        """Like `lease` for callers whose use outlives one block (streams): pair with `release`."""
        slot = self.slots.get(route_name)
        if slot is None or slot.retired:
            raise ModelNotFound(f"No route named '{route_name}'.")
        if self.failure is not None:
            slot.count_refused("load_failed")
            raise unavailable(self.failure)
        if self._scheduler.closing:
            slot.count_refused("shutting_down")
            raise ShuttingDown("The host is shutting down.", retry_after=30)
        if len(slot.waiting) >= self.host.max_waiting:
            slot.count_refused("overloaded")
            raise Overloaded(
                f"{len(slot.waiting)} requests are already waiting for {slot.route.primary_id}; "
                "try again shortly.",
                retry_after=5,
            )
        if not slot.waiting:
            lease = self._scheduler.grant(slot)
            if lease is not None:
                return lease  # ready and not at its limit: no need to queue (module docstring)
        ticket = Ticket(self._clock(), asyncio.get_running_loop().create_future())
        slot.waiting.append(ticket)
        self._scheduler.poke()
        # The scheduler answers every ticket: a lease, or a 503 at the request's own bound
        # (max_wait_seconds), the load's (start_timeout_seconds), a failure or a stop.
        try:
            return await asyncio.shield(ticket.granted)
        except BaseException:
            self._withdraw(slot, ticket)
            raise

    def reconfigure(self, catalog: Catalog) -> dict[str, list[str]]:
        """Switch to a new routing table without dropping in-flight requests
        (llmhost.lifecycle.reconfigure.apply_catalog says how)."""
        changes = apply_catalog(self.slots, catalog)
        self.catalog = catalog
        self._scheduler.ctx.host = catalog.host
        self._scheduler.ctx.max_wait = request_wait_bound(catalog)
        self._inputs.estimate_needs()
        self._inputs.ask_platform(catalog)
        # A resident route added or changed loads again at once, as at start-up.
        self.prewarm(n for n in (*changes["added"], *changes["changed"]) if catalog.routes[n].resident)
        log.info(
            "configuration reloaded: added %s, removed %s, changed %s",
            *(", ".join(changes[k]) or "none" for k in ("added", "removed", "changed")),
        )
        self._scheduler.poke()
        return changes

    async def unload(self, route_names: Sequence[str] = ()) -> list[str]:
        """Unload these routes now (none named: every route; `llmhost unload`): in-flight
        requests drain within drain_timeout_seconds, waiting ones get 503, later ones load
        them again. Returns, once they hold no engine and their memory is back, the routes
        that had one (loaded, loading, asleep). An unknown route is refused before any unload."""
        routes = {name: slot for name, slot in self.slots.items() if not slot.retired}
        unknown = [name for name in route_names if name not in routes]
        if unknown:
            raise RouteNotFound(
                f"No route named '{unknown[0]}'. Routes: {', '.join(routes)}.", param="routes"
            )
        if self.failure is not None:
            raise unavailable(self.failure)
        if self._scheduler.closing:
            raise ShuttingDown("The host is shutting down: it unloads every model itself.", retry_after=30)
        chosen = [routes[name] for name in dict.fromkeys(route_names or routes)]
        had_engine = [slot.route.name for slot in chosen if has_engine(slot.state)]
        await asyncio.gather(*(self._scheduler.request_unload(slot) for slot in chosen))
        log.info("unloaded on request: %s", ", ".join(had_engine) or "nothing was loaded")
        return had_engine

    @contextmanager
    def preparing(self, route_name: str) -> Iterator[None]:
        """Count a request as waiting for its model while it prepares (e.g. the engine
        library's first import): /stats never shows a model idle with requests held up."""
        slot = self.slots.get(route_name)
        if slot is None:
            yield
            return
        slot.preparing += 1
        try:
            yield
        finally:
            slot.preparing -= 1

    def release(self, lease: Lease) -> None:
        if lease.released:
            return
        lease.released = True
        slot = lease.slot
        slot.active.discard(lease)
        slot.last_used = self._clock()
        # The pass has something to do only when the model went idle (its idle timer
        # starts), drains for an eviction, or has requests waiting for a free place;
        # skipping the poke otherwise saves a pass per request under steady load.
        if not slot.active or slot.eviction is not None or slot.waiting:
            self._scheduler.poke()

    def count_refusal(self, route_name: str, reason: str) -> None:
        """Count a 503 given for `route_name` outside the manager (e.g. a full image queue),
        so /stats and llmhost_requests_refused_total show every refusal."""
        slot = self.slots.get(route_name)
        if slot is not None:
            slot.count_refused(reason)

    def route_state(self, route_name: str) -> ModelState:
        return self.slots[route_name].state

    def loaded_backends(self) -> list[Backend]:
        return [s.backend for s in self.slots.values() if s.backend is not None]

    def snapshot(self) -> list[dict[str, Any]]:
        now = self._clock()
        platform = self._scheduler.ctx.standby
        return [slot.stats(now, platform.known, platform.problem) for slot in self.slots.values()]

    def begin_close(self) -> None:
        """Start closing at the stop signal: refuse new work, abandon a load at once (a stop
        never sits out a cold load) while in-flight requests finish (the HTTP server drains)."""
        if self._close_task is None:
            self._close_task = asyncio.create_task(self._close(), name="llmhost-close")

    async def close(self) -> None:
        """Refuse new work, drain what is in flight (bounded), unload everything."""
        self.begin_close()
        assert self._close_task is not None
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        # The pass answers the waiting requests, abandons a load, drains and unloads.
        self._scheduler.closing = True
        self._scheduler.poke()
        if self.failure is None:
            bound = self.host.drain_timeout_seconds + self.host.start_timeout_seconds + 60
            await self._clock.wait(self._scheduler.stopped, self._clock() + bound)
            if not self._scheduler.stopped.is_set():
                log.error("shutdown: models still not stopped after %.0f s, giving up", bound)
        if self.failure is not None:
            await stop_engines(self.slots, self._scheduler)
        op = self._scheduler.op
        for task in (self._loop_task, op.task if op is not None else None, *self._inputs.tasks):
            if task is not None and not task.done():
                task.cancel()
        heap.thaw()  # nothing is loaded any more

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler

    def _withdraw(self, slot: Slot, ticket: Ticket) -> None:
        """A waiter gave up (timeout, client gone): drop its ticket, or release what it got."""
        if ticket.granted.done():
            if not ticket.granted.cancelled() and ticket.granted.exception() is None:
                self.release(ticket.granted.result())
        else:
            ticket.granted.cancel()
        with suppress(ValueError):  # the pass took it already
            slot.waiting.remove(ticket)
        self._scheduler.poke()

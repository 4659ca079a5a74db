"""The one owner of every load and unload decision: the manager's public API.

Concurrency model (read this before changing anything here; docs/lifecycle.md has more):

* Request handlers never look at a model's state to decide anything. They call
  `lease(route)`, which queues a ticket and awaits it; the ticket resolves to a
  `Lease` once the model is ready, and the lease is released when the request's
  last byte has gone out (or its client went away).
* One scheduler task (llmhost.lifecycle.scheduler) owns every state change. It wakes on
  any event (a new ticket, a released lease, a finished GPU operation, a timer) and
  runs a synchronous pass over all models: no locks, no races between deciding and
  acting.
* The GPU work (llmhost.lifecycle.operations) runs as one operation at a time, so
  free-memory readings before and after belong to exactly one model. An operation only
  does the slow work and returns an outcome (loaded, failed, abandoned, stopped, memory
  back); the scheduler applies it to the slot. Its slow parts run off the event loop
  inside the backend; `/healthz` and model lists stay instant.
* Eviction stops new leases for the victim, waits for its leases to drain (up to
  `drain_timeout_seconds`), then unloads. A resident model keeps serving while it is
  busy, for at most `max_hold_seconds` after another model started waiting: no
  thrash between two busy routes, no starvation of either.
* The one shortcut: `acquire` on a model that is ready, under its `max_in_flight` and
  with nobody queued gets its lease at once, without a ticket and a wake-up of the
  scheduler: docs/performance.md counts that round trip in the extra CPU per request
  llmhost spent over bare vLLM on a warm route, and recommends skipping it.
  It grants through `Scheduler.grant`, the same method the pass grants tickets with,
  so the rules for a lease live in one place and no state changes outside the scheduler.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from llmhost.backends import heap
from llmhost.backends.base import ABANDON_TIMEOUT_SECONDS, Backend, BackendFactory
from llmhost.config import Catalog, HostConfig, RouteConfig
from llmhost.errors import ModelNotFound, ModelUnavailable, Overloaded, RouteNotFound, ShuttingDown
from llmhost.gpu.margin import EngineMargins
from llmhost.gpu.monitor import GpuMonitor
from llmhost.lifecycle import operations
from llmhost.lifecycle.bounds import request_wait_bound
from llmhost.lifecycle.clock import Clock, MonotonicClock
from llmhost.lifecycle.scheduler import Preflight, Scheduler, StandbyPlatform
from llmhost.lifecycle.sizing import wants_estimate
from llmhost.lifecycle.slot import Lease, Slot, Ticket
from llmhost.lifecycle.state import ModelState, has_engine

log = logging.getLogger("llmhost.lifecycle")

__all__ = ["Estimator", "ModelManager", "Preflight", "StandbyQuery"]

T = TypeVar("T")

# A route's estimated GPU need in bytes (llmhost.estimate), None when unknown. Called in a
# worker thread: it may read config files from the model cache.
Estimator = Callable[[RouteConfig], "int | None"]
# Why this platform has no sleep mode, None when it has one (called in a worker thread:
# the default imports vLLM's platform detection, which takes seconds).
StandbyQuery = Callable[[], "str | None"]
# How long the standby check waits for what it runs after (the background imports).
STANDBY_AFTER_SECONDS = 300


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
        standby_query: StandbyQuery | None = None,
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
        self._estimator = estimator if estimator is not None else _estimate_need
        self._standby_query = standby_query if standby_query is not None else _sleep_mode_problem
        # Awaited before the check runs (the app: its background imports are done, since two
        # threads importing vLLM at once can deadlock), on the loop, holding no worker thread.
        self._standby_after = standby_after
        self._platform_asked = False
        self.slots: dict[str, Slot] = {name: Slot(route) for name, route in catalog.routes.items()}
        self._scheduler = Scheduler(
            catalog.host,
            self.slots,
            backend_factory,
            gpu,
            clock=self._clock,
            preflight=preflight,
            route_changed=self._estimate_needs,
            margins=margins,
        )
        self._loop_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._close_task: asyncio.Task[None] | None = None

    @property
    def host(self) -> HostConfig:
        return self._scheduler.host

    def start(self) -> None:
        self._scheduler.max_wait = request_wait_bound(self.catalog)
        self._loop_task = asyncio.create_task(self._scheduler.run(), name="llmhost-scheduler")
        self._loop_task.add_done_callback(self._scheduler_stopped)
        self._estimate_needs()
        self._ask_platform()
        # Resident routes load first: their tickets are the oldest, so they go before any
        # request and before [host] prewarm (docs/lifecycle.md, "Resident routes").
        self.prewarm(name for name, route in self.catalog.routes.items() if route.resident)

    def _scheduler_stopped(self, task: asyncio.Task[None]) -> None:
        """The scheduler task ended. Cancelled by `close` at the very end is the normal
        end; anything else is an error that escaped the pass: no model can change state
        any more, so nothing may wait for one."""
        self.scheduler_ended.set()
        if task.cancelled() and self._close_task is not None:
            return
        error = None if task.cancelled() else task.exception()
        cause = f"{type(error).__name__}: {error}" if error is not None else "it was cancelled"
        self.failure = f"the model scheduler stopped ({cause})"
        log.critical("%s; no model can be loaded or unloaded any more", self.failure, exc_info=error)
        for slot in self.slots.values():
            slot.count_refused("load_failed", len(slot.waiting))
            slot.reject_waiting(self._failed())
            for waiter in slot.unload_waiters:  # an unload cannot finish either
                if not waiter.done():
                    waiter.set_exception(self._failed())
        if self._on_fatal is not None:
            self._on_fatal(self.failure)

    def _failed(self) -> ModelUnavailable:
        return ModelUnavailable(
            f"The host cannot serve models: {self.failure}; it is restarting.", retry_after=30
        )

    def _ask_platform(self) -> None:
        """Once a route asks for standby: ask the platform whether it has a sleep mode, and
        say so once if it has none (those routes then swap by shutdown)."""
        if self._platform_asked or not any(r.standby == "sleep" for r in self.catalog.routes.values()):
            return
        self._platform_asked = True
        self._spawn(self._ask_standby(), "standby-check")

    async def _ask_standby(self) -> None:
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
        self._scheduler.standby = StandbyPlatform(known=True, problem=problem)
        if problem is not None:
            routes = ", ".join(n for n, r in self.catalog.routes.items() if r.standby == "sleep")
            log.warning(
                "standby requested for %s but unavailable: %s; they swap by shutdown", routes, problem
            )
        self._scheduler.wake()

    def _estimate_needs(self) -> None:
        """Estimate what routes need (under `fit` each auto-sized one, and every resident
        route not fixed in size: llmhost.lifecycle.sizing.wants_estimate), off the event loop."""
        slots = [
            s
            for s in self.slots.values()
            if wants_estimate(s.route, self.host.policy) and s.estimated_bytes is None
        ]
        slots = [s for s in slots if not s.estimate_pending]
        if not slots:
            return
        for slot in slots:
            slot.estimate_pending = True
        self._spawn(self._estimate(slots), "estimate-needs")

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
            self._scheduler.wake()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def prewarm(self, names: Iterable[str]) -> None:
        """Load these routes in the background; start-up does not wait for them."""
        for name in names:
            self._spawn(self._prewarm_one(name), f"prewarm-{name}")

    async def _prewarm_one(self, name: str) -> None:
        log.info("prewarm: loading %s", name)
        try:
            async with self.lease(name):
                pass
        except Exception as exc:  # the failure is already logged and visible in /stats
            log.warning("prewarm of %s did not finish: %s", name, getattr(exc, "message", exc))

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
            raise self._failed()
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
        self._scheduler.wake()
        # The scheduler answers every ticket: a lease, or a 503 at the request's own bound
        # (max_wait_seconds), the load's (start_timeout_seconds), a failure or a stop.
        try:
            return await asyncio.shield(ticket.granted)
        except BaseException:
            self._withdraw(slot, ticket)
            raise

    def reconfigure(self, catalog: Catalog) -> dict[str, list[str]]:
        """Switch to a new routing table without dropping in-flight requests.

        New routes appear at once. Removed routes refuse new requests, finish what they
        serve, unload and disappear. Changed routes finish what they serve, unload, and
        load with their new settings at their next use.
        """
        changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        for name, route in catalog.routes.items():
            slot = self.slots.get(name)
            if slot is None or slot.retired:
                if slot is not None:  # removed earlier, back before it finished unloading
                    slot.retired = False
                    slot.next_route = route
                else:
                    self.slots[name] = Slot(route)
                changes["added"].append(name)
            elif slot.route != route:
                slot.next_route = route
                changes["changed"].append(name)
            else:
                slot.next_route = None
        for name, slot in self.slots.items():
            if name not in catalog.routes and not slot.retired:
                slot.retired = True  # the pass answers its waiting requests and unloads it
                changes["removed"].append(name)
        self.catalog = catalog
        self._scheduler.host = catalog.host
        self._scheduler.max_wait = request_wait_bound(catalog)
        self._estimate_needs()
        self._ask_platform()
        # A resident route added or changed loads again at once, as at start-up.
        self.prewarm(n for n in (*changes["added"], *changes["changed"]) if catalog.routes[n].resident)
        log.info(
            "configuration reloaded: added %s, removed %s, changed %s",
            *(", ".join(changes[k]) or "none" for k in ("added", "removed", "changed")),
        )
        self._scheduler.wake()
        return changes

    async def unload(self, route_names: Sequence[str] = ()) -> list[str]:
        """Unload these routes now (none named: every route), as `llmhost unload` does to free
        the GPU: in-flight requests drain within drain_timeout_seconds, requests waiting
        for them get 503, later requests load them again as usual. Returns, once they hold
        no engine and their memory is back, the routes that had an engine (loaded, loading,
        asleep). An unknown route is refused before anything is unloaded."""
        routes = {name: slot for name, slot in self.slots.items() if not slot.retired}
        unknown = [name for name in route_names if name not in routes]
        if unknown:
            raise RouteNotFound(
                f"No route named '{unknown[0]}'. Routes: {', '.join(routes)}.", param="routes"
            )
        if self.failure is not None:
            raise self._failed()
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
        # skipping the wake otherwise saves a pass per request under steady load.
        if not slot.active or slot.evicting or slot.waiting:
            self._scheduler.wake()

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
        platform = self._scheduler.standby
        return [slot.stats(now, platform.known, platform.problem) for slot in self.slots.values()]

    def begin_close(self) -> None:
        """Start closing now: refuse new work and abandon loads in progress at once, while
        in-flight requests finish (called when the stop signal arrives, before the HTTP
        server's drain, so a stop never sits out a cold load)."""
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
        self._scheduler.wake()
        if self.failure is None:
            bound = self.host.drain_timeout_seconds + self.host.start_timeout_seconds + 60
            await self._clock.wait(self._scheduler.stopped, self._clock() + bound)
            if not self._scheduler.stopped.is_set():
                log.error("shutdown: models still not stopped after %.0f s, giving up", bound)
        if self.failure is not None:
            await self._stop_engines()
        op = self._scheduler.op
        for task in (self._loop_task, op.task if op is not None else None, *self._background):
            if task is not None and not task.done():
                task.cancel()
        heap.thaw()  # nothing is loaded any more

    async def _stop_engines(self) -> None:
        """The scheduler is gone: stop every engine it knew of directly, one after another
        (best effort; the watchdog kills what is left when the process exits)."""
        engines = [(s.route, s.backend) for s in self.slots.values() if s.backend is not None]
        engines += [(o.route, o.backend) for o in self._scheduler.orphans if o.backend is not None]
        op = self._scheduler.op
        if op is not None:  # a load gives up and returns the engine it began
            op.stop("the host is shutting down")
            await asyncio.wait({op.task}, timeout=ABANDON_TIMEOUT_SECONDS)
            if op.task.done() and not op.task.cancelled() and op.task.exception() is None:
                backend = getattr(op.task.result(), "backend", None)
                if backend is not None:
                    engines.append((backend.route, backend))
        for route, backend in engines:
            await operations.stop(backend, route)

    async def wait_state(self, route_name: str, *states: ModelState) -> ModelState:
        """Wait until `route_name` is in one of `states` (checked after every pass, where
        every state change happens); returns the state reached."""
        while True:
            state = self.slots[route_name].state
            if state in states:
                return state
            await self._scheduler.next_pass()

    async def wait_until(self, check: Callable[[], bool]) -> None:
        """Wait until `check()` holds, checked now and after every pass."""
        while not check():
            await self._scheduler.next_pass()

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler

    def run_soon(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `work` on the manager's event loop, from another thread (a server thread's
        caller: tests, tools); the future gives its result."""
        assert self._loop_task is not None, "the manager is not started"
        return asyncio.run_coroutine_threadsafe(work, self._loop_task.get_loop())

    def _withdraw(self, slot: Slot, ticket: Ticket) -> None:
        """A waiter gave up (timeout, client gone): drop its ticket, or release what it got."""
        if ticket.granted.done():
            if not ticket.granted.cancelled() and ticket.granted.exception() is None:
                self.release(ticket.granted.result())
        else:
            ticket.granted.cancel()
        try:
            slot.waiting.remove(ticket)
        except ValueError:
            pass
        self._scheduler.wake()


def _sleep_mode_problem() -> str | None:
    """The default standby check: vLLM's own answer for this platform."""
    from llmhost.backends.vllm.standby import sleep_mode_problem

    return sleep_mode_problem()


def _estimate_need(route: RouteConfig) -> int | None:
    """The default estimator: llmhost.estimate, from the files in the model cache."""
    from llmhost.estimate import estimate_route

    return estimate_route(route).need_bytes

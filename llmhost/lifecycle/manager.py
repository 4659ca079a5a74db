"""The one owner of every load and unload decision.

Concurrency model (read this before changing anything here):

* Request handlers never look at a model's state to decide anything. They call
  `lease(route)`, which queues a ticket and awaits it; the ticket resolves to a
  `Lease` once the model is ready, and the lease is released when the request's
  last byte has gone out (or its client went away).
* One scheduler task (`_run`) owns every decision. It wakes on any event (a new
  ticket, a released lease, a finished load or unload, a timer) and runs
  `_schedule`, a synchronous pass over all models: no locks, no races between
  deciding and acting.
* Loads and unloads run as one "GPU operation" task at a time, so free-memory
  readings before and after belong to exactly one model. Their slow parts run
  off the event loop inside the backend; `/healthz` and model lists stay instant.
* Eviction stops new leases for the victim, waits for its leases to drain (up to
  `drain_timeout_seconds`), then unloads. A resident model keeps serving while it is
  busy, for at most `max_hold_seconds` after another model started waiting: no
  thrash between two busy routes, no starvation of either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from llmhost.backends.base import Backend, BackendFactory, LoadFailed
from llmhost.backends.engine_failure import describe
from llmhost.config import Catalog, RouteConfig
from llmhost.errors import ModelNotFound, ModelUnavailable, Overloaded, ShuttingDown
from llmhost.gpu import GIB, GpuMemory, GpuMonitor
from llmhost.lifecycle.policy import Resident, plan_eviction
from llmhost.lifecycle.sizing import EngineBudget, engine_budget, need_bytes, sized_route
from llmhost.lifecycle.slot import Lease, Slot, Ticket
from llmhost.lifecycle.state import ModelState, is_resident

log = logging.getLogger("llmhost.lifecycle")

# How long an abandoned load's start may take to return once its backend was stopped.
ABANDONED_START_SECONDS = 30.0

Clock = Callable[[], float]
# A route's estimated GPU need in bytes (llmhost.estimate), None when unknown. Called in a
# worker thread: it may read config files from the model cache.
Estimator = Callable[[RouteConfig], "int | None"]
# Why a route's model cannot be found (llmhost.preflight.problem), None when it may load.
# Run before anything is evicted for it; file-system stats only.
Preflight = Callable[[RouteConfig], "str | None"]


class ModelManager:
    def __init__(
        self,
        catalog: Catalog,
        backend_factory: BackendFactory,
        gpu: GpuMonitor,
        *,
        clock: Clock = time.monotonic,
        estimator: Estimator | None = None,
        preflight: Preflight | None = None,
    ) -> None:
        self.catalog = catalog
        self.host = catalog.host
        self._factory = backend_factory
        self._gpu = gpu
        self._clock = clock
        self._estimator = estimator if estimator is not None else _estimate_need
        self._preflight = preflight
        self.slots: dict[str, Slot] = {name: Slot(route) for name, route in catalog.routes.items()}
        self._wake = asyncio.Event()
        self._op: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._idle_event = asyncio.Event()  # set when closing and everything is stopped

    # ---- public API -------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="llmhost-scheduler")
        self._estimate_needs()

    def _estimate_needs(self) -> None:
        """Under `fit`, estimate what each auto-sized route needs, off the event loop."""
        if self.host.policy != "fit":
            return
        slots = [
            s
            for s in self.slots.values()
            if s.route.kind == "llm" and s.route.memory_is_auto and s.estimated_bytes is None
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
            self._wake.set()

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
        if self._closing:
            slot.refuse("shutting_down")
            raise ShuttingDown("The host is shutting down.", retry_after=30)
        if len(slot.waiting) >= self.host.max_waiting:
            slot.refuse("overloaded")
            raise Overloaded(
                f"{len(slot.waiting)} requests are already waiting for {slot.route.primary_id}; "
                "try again shortly.",
                retry_after=5,
            )
        if self._can_grant(slot) and not slot.waiting:
            return self._new_lease(slot)  # ready and not at its limit: no need to queue
        ticket = Ticket(self._clock(), asyncio.get_running_loop().create_future())
        slot.waiting.append(ticket)
        self._wake.set()
        timeout = self.host.start_timeout_seconds
        try:
            return await asyncio.wait_for(asyncio.shield(ticket.granted), timeout)
        except asyncio.TimeoutError:
            self._withdraw(slot, ticket)
            slot.refuse("start_timeout")
            raise ModelUnavailable(
                f"{slot.route.primary_id} did not become ready within {timeout:g} s "
                f"(it is {slot.state.value}). Retry later; START_TIMEOUT_SECONDS sets the limit.",
                retry_after=30,
            ) from None
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
                slot.retired = True
                self._reject_waiting(slot, ModelNotFound(f"The route '{name}' was removed."))
                _abandon_load(slot, "the route was removed from the configuration")
                changes["removed"].append(name)
        self.catalog = catalog
        self.host = catalog.host
        self._estimate_needs()
        log.info(
            "configuration reloaded: added %s, removed %s, changed %s",
            *(", ".join(changes[k]) or "none" for k in ("added", "removed", "changed")),
        )
        self._wake.set()
        return changes

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
        self._wake.set()

    def route_state(self, route_name: str) -> ModelState:
        return self.slots[route_name].state

    def loaded_backends(self) -> list[Backend]:
        return [s.backend for s in self.slots.values() if s.backend is not None]

    def snapshot(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [slot.stats(now) for slot in self.slots.values()]

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
        self._closing = True
        for slot in self.slots.values():
            slot.refuse("shutting_down", len(slot.waiting))
            self._reject_waiting(slot, ShuttingDown("The host is shutting down.", retry_after=30))
            _abandon_load(slot, "the host is shutting down")
        self._wake.set()
        bound = self.host.drain_timeout_seconds + self.host.start_timeout_seconds + 60
        try:
            await asyncio.wait_for(self._idle_event.wait(), bound)
        except asyncio.TimeoutError:
            log.error("shutdown: models still not stopped after %.0f s, giving up", bound)
        for task in (self._loop_task, self._op, *self._background):
            if task is not None and not task.done():
                task.cancel()

    # ---- scheduler ----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            deadline = self._schedule()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def _schedule(self) -> float | None:
        """One decision pass. Returns when the next timer is due (None: nothing pending)."""
        now = self._clock()
        deadlines: list[float] = []
        for slot in list(self.slots.values()):
            if self._apply_reload(slot, now):
                continue
            self._grant(slot)
            self._check_failed(slot, now, deadlines)
            self._check_idle(slot, now, deadlines)
        if self._closing:
            self._schedule_close()
        if self._op is None:
            self._next_operation(now, deadlines)
        return min(deadlines, default=None)

    def _can_grant(self, slot: Slot) -> bool:
        return (
            slot.state is ModelState.READY
            and slot.backend is not None
            and not slot.evicting
            and slot.next_route is None
            and not slot.retired
            and len(slot.active) < self.host.max_in_flight
        )

    def _new_lease(self, slot: Slot) -> Lease:
        assert slot.backend is not None
        lease = Lease(slot, slot.backend)
        slot.active.add(lease)
        slot.last_hit = time.time()
        return lease

    def _grant(self, slot: Slot) -> None:
        if slot.state is not ModelState.READY or slot.backend is None:
            return
        while slot.waiting and self._can_grant(slot):
            ticket = slot.waiting.popleft()
            if not ticket.granted.done():
                ticket.granted.set_result(self._new_lease(slot))
        failure = slot.backend.failure()
        if failure is not None and not slot.active and not slot.evicting:
            self._mark_evicting(slot, f"its engine stopped working ({failure})", self._clock())

    def _apply_reload(self, slot: Slot, now: float) -> bool:
        """Move a reloaded route toward its new settings; True if the slot is gone."""
        if slot.next_route is None and not slot.retired:
            return False
        if slot.state is ModelState.READY and not slot.evicting:
            why = "removed from the configuration" if slot.retired else "configuration changed"
            self._mark_evicting(slot, why, now, bounded=False)
        elif slot.state in (ModelState.STOPPED, ModelState.FAILED):
            if slot.retired:
                del self.slots[slot.route.name]
                return True
            assert slot.next_route is not None
            slot.route, slot.next_route = slot.next_route, None
            slot.measured_bytes = slot.failed_at = None  # a fixed route retries at once
            slot.estimated_bytes = None
            self._estimate_needs()
        return False

    def _check_failed(self, slot: Slot, now: float, deadlines: list[float]) -> None:
        if slot.state is not ModelState.FAILED or not slot.waiting or slot.failed_at is None:
            return
        retry_at = slot.failed_at + self.host.retry_backoff_seconds
        if now < retry_at:
            slot.refuse("load_failed", len(slot.waiting))
            self._reject_waiting(slot, self._failed_error(slot, retry_at - now))
            deadlines.append(retry_at)

    def _check_idle(self, slot: Slot, now: float, deadlines: list[float]) -> None:
        if slot.state is not ModelState.READY or slot.evicting or slot.busy:
            return
        idle = slot.route.effective_idle_seconds(self.host)
        due = slot.last_used + idle
        if now >= due:
            self._mark_evicting(slot, f"idle for {idle:g} s", now)
        else:
            deadlines.append(due)

    def _schedule_close(self) -> None:
        now = self._clock()
        for slot in self.slots.values():
            if slot.state is ModelState.READY and not slot.evicting:
                self._mark_evicting(slot, "host shutting down", now)
        if self._op is None and not any(is_resident(s.state) for s in self.slots.values()):
            self._idle_event.set()

    def _next_operation(self, now: float, deadlines: list[float]) -> None:
        # 1. Finish evictions already decided: unload once drained or the drain bound passed.
        for slot in self.slots.values():
            if slot.evicting and slot.state is ModelState.READY:
                assert slot.drain_started is not None
                drain_deadline = slot.drain_started + self.host.drain_timeout_seconds
                overdue = slot.drain_bounded and now >= drain_deadline
                if not slot.active or overdue:
                    self._begin(self._unload(slot), slot)
                    return
                if slot.drain_bounded:
                    deadlines.append(drain_deadline)
        if self._closing:
            return
        # 2. Bring in the model whose request has waited longest.
        wanted = self._most_waited()
        if wanted is None or wanted.estimate_pending:
            return  # an estimate in progress wakes the scheduler when it is done
        refused = self._preflight(wanted.route) if self._preflight is not None else None
        if refused is not None:
            self._fail(wanted, refused)  # nothing was evicted for it
            self._wake.set()
            return
        residents = [s for s in self.slots.values() if s is not wanted and is_resident(s.state)]
        gpu = self._gpu.memory()
        need = self._need_bytes(wanted, gpu.total_bytes if gpu else None)
        plan = plan_eviction(
            self.host.policy,
            wanted.route.name,
            need,
            [Resident(s.route.name, s.busy, s.last_used, s.measured_bytes) for s in residents],
            gpu,
        )
        if not plan.fits:
            log.error("cannot load %s: %s", wanted.route.primary_id, plan.reason)
            wanted.refuse("does_not_fit", len(wanted.waiting))
            self._reject_waiting(
                wanted,
                ModelUnavailable(
                    f"{wanted.route.primary_id} cannot be loaded: {plan.reason}.", retry_after=60
                ),
            )
            return
        if not plan.evict:
            self._begin(self._load(wanted), wanted)
            return
        wanted.swap_pending = True
        oldest = wanted.oldest_wait() or now
        for name in plan.evict:
            victim = self.slots[name]
            if victim.evicting or victim.state is not ModelState.READY:
                continue
            hold_until = max(victim.ready_at, oldest) + self.host.max_hold_seconds
            if victim.busy and now < hold_until:
                deadlines.append(hold_until)  # let it finish what it has, within the hold
                continue
            self._mark_evicting(victim, f"making room for {wanted.route.primary_id}", now)
            self._wake.set()  # unload it in the next pass if it is already drained

    def _most_waited(self) -> Slot | None:
        candidates = [
            s for s in self.slots.values() if s.waiting and s.state in (ModelState.STOPPED, ModelState.FAILED)
        ]
        return min(candidates, key=lambda s: s.oldest_wait() or 0.0, default=None)

    def _need_bytes(self, slot: Slot, total: int | None) -> int | None:
        return need_bytes(
            slot.route,
            self.host.policy,
            total,
            measured_bytes=slot.measured_bytes,
            estimate_bytes=slot.estimated_bytes,
        )

    def _budget(self, slot: Slot, gpu: GpuMemory | None) -> EngineBudget:
        return engine_budget(
            slot.route,
            self.host.policy,
            gpu,
            margin_bytes=int(self.host.engine_margin_gib * GIB),
            estimate_bytes=slot.estimated_bytes,
        )

    def _mark_evicting(self, slot: Slot, reason: str, now: float, *, bounded: bool = True) -> None:
        slot.evicting = reason
        slot.drain_started = now
        slot.drain_bounded = bounded
        if slot.active:
            log.info(
                "evicting %s (%s): draining %d in-flight request(s)",
                slot.route.primary_id,
                reason,
                len(slot.active),
            )

    # ---- GPU operations -------------------------------------------------------------

    def _begin(self, work: Coroutine[Any, Any, None], slot: Slot) -> None:
        task = asyncio.create_task(work, name=f"gpu-op-{slot.route.name}")
        self._op = task

        def _done(t: asyncio.Task[None]) -> None:
            self._op = None
            if not t.cancelled() and t.exception() is not None:
                log.error("model operation for %s crashed", slot.route.name, exc_info=t.exception())
            self._wake.set()

        task.add_done_callback(_done)

    async def _load(self, slot: Slot) -> None:
        route = slot.route
        slot.to(ModelState.LOADING)
        slot.evicting = None
        started = self._clock()
        slot.load_started = started
        before = self._gpu.memory()
        need = self._need_bytes(slot, before.total_bytes if before else None)
        if before is not None and need is not None and need > before.free_bytes:
            self._fail(
                slot,
                f"needs {need / GIB:.1f} GiB of GPU memory but only "
                f"{before.free_bytes / GIB:.1f} GiB is free",
            )
            return
        budget = self._budget(slot, before)
        if budget.error is not None:
            self._fail(slot, budget.error)
            return
        slot.budget_bytes = budget.bytes
        kind = "swap" if slot.swap_pending else "cold start"
        log.info(
            "loading %s (%s, %s) from %s; GPU memory: %s",
            route.primary_id,
            route.name,
            kind,
            route.model,
            budget.reason if budget.utilization is None else f"{budget.reason} -> {budget.utilization:g}",
        )
        backend = self._factory(sized_route(route, budget), self.host)
        start = asyncio.create_task(backend.start())
        abort = slot.abort = asyncio.get_running_loop().create_future()
        try:
            done, _ = await asyncio.wait(
                {start, abort}, timeout=self.host.start_timeout_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            slot.abort = None
        if start not in done:
            # A stop, a removed route or the start timeout: the load is abandoned, never
            # forgotten. Stopping the backend interrupts its start (vLLM: its processes are
            # killed); the start then returns, and its memory is back before anything else.
            timeout = self.host.start_timeout_seconds
            self._fail(slot, abort.result() if abort.done() else f"loading took longer than {timeout:g} s")
            await self._stop_quietly(backend, route)
            await asyncio.wait({start}, timeout=ABANDONED_START_SECONDS)
            if start.done() and not start.cancelled():
                start.exception()  # retrieved: the failure is already reported
            await self._settle_memory(before, None)
            return
        error = start.exception()
        if error is not None:
            await self._stop_quietly(backend, route)
            self._fail(slot, _describe(error))
            return
        elapsed = self._clock() - started
        after = self._gpu.memory()
        if before is not None and after is not None:
            slot.measured_bytes = max(0, before.free_bytes - after.free_bytes)
        slot.backend = backend
        slot.to(ModelState.READY)
        slot.ready_at = slot.last_used = self._clock()
        slot.loads += 1
        slot.cold_starts.append(elapsed)
        slot.last_error = slot.failed_at = None
        if slot.swap_pending:
            slot.swaps += 1
            slot.swap_pending = False
        memory = f", {slot.measured_bytes / GIB:.2f} GiB" if slot.measured_bytes is not None else ""
        log.info("ready: %s in %.1f s (%s%s)", route.primary_id, elapsed, kind, memory)

    async def _unload(self, slot: Slot) -> None:
        route = slot.route
        reason = slot.evicting or "requested"
        backend = slot.backend
        slot.to(ModelState.UNLOADING)
        if slot.active:
            log.warning(
                "unloading %s with %d request(s) still running after the %g s drain bound",
                route.primary_id,
                len(slot.active),
                self.host.drain_timeout_seconds,
            )
            for lease in slot.active:
                lease.revoked = (
                    f"{route.primary_id} was unloaded ({reason}) before this request "
                    f"finished (drain bound {self.host.drain_timeout_seconds:g} s)"
                )
            slot.active = set()
        started = self._clock()
        before = self._gpu.memory()
        failure = backend.failure() if backend is not None else None
        if backend is not None:
            await self._stop_quietly(backend, route)
        slot.backend = None
        slot.budget_bytes = None
        slot.evicting = None
        slot.drain_started = None
        slot.drain_bounded = True
        slot.evictions += 1
        slot.to(ModelState.STOPPED)
        if failure is not None:
            slot.last_error = failure
        freed = await self._settle_memory(before, slot.measured_bytes)
        freed_text = f", {freed / GIB:.2f} GiB GPU memory back" if freed is not None else ""
        log.info(
            "unloaded %s (%s) in %.1f s%s", route.primary_id, reason, self._clock() - started, freed_text
        )

    async def _stop_quietly(self, backend: Backend, route: RouteConfig) -> None:
        try:
            await backend.stop()
        except Exception as exc:
            log.warning("stopping %s raised %s; treating it as stopped", route.primary_id, _describe(exc))

    async def _settle_memory(self, before: Any, expected: int | None) -> int | None:
        """Poll NVML until the unloaded model's memory shows as free (drivers report it late).

        Stops early once the reading has been steady for a while: an in-process pipeline
        leaves the CUDA context behind, so not every measured byte ever comes back.
        """
        if before is None:
            return None
        target = before.free_bytes + int((expected or 0) * 0.9)
        deadline = self._clock() + self.host.vram_settle_seconds
        delay, last, steady = 0.05, -1, 0
        while True:
            now_mem = self._gpu.memory()
            if now_mem is None:
                return None
            steady = steady + 1 if now_mem.free_bytes == last else 0
            last = now_mem.free_bytes
            if now_mem.free_bytes >= target or self._clock() >= deadline or steady >= 6:
                if now_mem.free_bytes < target:
                    log.info(
                        "%.2f GiB of the model's memory still in use after the unload "
                        "(e.g. an in-process CUDA context)",
                        (target - now_mem.free_bytes) / GIB,
                    )
                return max(0, now_mem.free_bytes - before.free_bytes)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _fail(self, slot: Slot, reason: str) -> None:
        slot.to(ModelState.FAILED)
        slot.budget_bytes = None
        slot.last_error = reason
        slot.failed_at = self._clock()
        slot.swap_pending = False
        log.error("failed to load %s (%s): %s", slot.route.primary_id, slot.route.model, reason)
        slot.failed_loads += 1
        slot.refuse("load_failed", len(slot.waiting))
        self._reject_waiting(slot, self._failed_error(slot, self.host.retry_backoff_seconds))

    def _failed_error(self, slot: Slot, retry_after: float) -> ModelUnavailable:
        return ModelUnavailable(
            f"{slot.route.primary_id} failed to load: {(slot.last_error or '').rstrip('.')}.",
            retry_after=retry_after,
        )

    def _reject_waiting(self, slot: Slot, error: Exception) -> None:
        while slot.waiting:
            ticket = slot.waiting.popleft()
            if not ticket.granted.done():
                ticket.granted.set_exception(error)

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
        self._wake.set()


def _abandon_load(slot: Slot, reason: str) -> None:
    """Tell a load in progress to give up (the GPU operation's task does the rest)."""
    if slot.abort is not None and not slot.abort.done():
        slot.abort.set_result(reason)


def _describe(error: BaseException) -> str:
    if isinstance(error, LoadFailed):
        return str(error)  # already the one line users need (e.g. vLLM's root cause)
    return describe(error)


def _estimate_need(route: RouteConfig) -> int | None:
    """The default estimator: llmhost.estimate, from the files in the model cache."""
    from llmhost.estimate import estimate_route

    return estimate_route(route).need_bytes

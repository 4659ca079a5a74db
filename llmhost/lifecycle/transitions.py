"""The scheduler's hands: start a GPU operation, apply its outcome to the slot.

Called only by the scheduler (llmhost.lifecycle.scheduler), from its pass or from the
done callback of the operation it started, always on the event loop: the state changes
made here are the scheduler's. The slow work itself is in llmhost.lifecycle.operations,
which returns outcomes and never touches a slot. One operation runs at a time (`op`);
a load or an unload may take two steps (stop the engine, then wait for its memory), and
the second starts in the first one's callback, so nothing else gets in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from llmhost.backends.base import BackendFactory, Sleeper
from llmhost.backends.engine_start import engine_start_of
from llmhost.config import HostConfig
from llmhost.errors import ModelUnavailable
from llmhost.gpu import GIB, GpuMemory, GpuMonitor
from llmhost.lifecycle import operations
from llmhost.lifecycle.operations import Abandoned, Failed, LoadOutcome, Reclaimed, Slept, WakeFailed, Woke
from llmhost.lifecycle.sizing import engine_budget, need_bytes, sized_route
from llmhost.lifecycle.slot import Slot
from llmhost.lifecycle.state import ModelState
from llmhost.margin import EngineMargins

log = logging.getLogger("llmhost.lifecycle")

# Failed sleeps or wakes after which a route's standby is off until the host restarts.
STANDBY_FAILURE_LIMIT = 2

Clock = Callable[[], float]
T = TypeVar("T")


class Transitions:
    def __init__(
        self,
        host: Callable[[], HostConfig],
        factory: BackendFactory,
        gpu: GpuMonitor,
        *,
        clock: Clock,
        wake: Callable[[], None],
        standby_unavailable: Callable[[], str | None] = lambda: None,
        margins: EngineMargins | None = None,
    ) -> None:
        self._host = host
        self._factory = factory
        self._gpu = gpu
        self._clock = clock
        self._wake = wake
        self._standby_unavailable = standby_unavailable  # the platform's reason, said once at start-up
        self.margins = margins if margins is not None else EngineMargins()  # llmhost.margin
        self.op: asyncio.Task[Any] | None = None  # the GPU operation in progress

    def begin(self, slot: Slot, work: Coroutine[Any, Any, T], apply: Callable[[T], None]) -> None:
        task = asyncio.create_task(work, name=f"gpu-op-{slot.route.name}")
        self.op = task

        def _done(t: asyncio.Task[T]) -> None:
            self.op = None
            try:
                if not t.cancelled():
                    apply(t.result())
            except Exception as exc:
                log.error("model operation for %s crashed", slot.route.name, exc_info=exc)
            self._wake()

        task.add_done_callback(_done)

    def load(self, slot: Slot, *, reserve_bytes: int = 0) -> None:
        """Start loading `slot`; `reserve_bytes` stays free for engines that will sleep
        beside it (llmhost.lifecycle.sizing.engine_budget)."""
        route = slot.route
        slot.to(ModelState.LOADING)
        slot.evicting = None
        started = slot.load_started = self._clock()
        before = self._gpu.memory()
        need = need_of(slot, self._host().policy, before.total_bytes if before else None)
        margin = self.margins.in_use(self._host(), self._gpu.name).bytes
        budget = engine_budget(
            route,
            self._host().policy,
            before,
            margin_bytes=margin,
            estimate_bytes=slot.estimated_bytes,
            reserve_bytes=reserve_bytes,
        )
        refusal = _short_of_memory(need, before) or budget.error
        if refusal is not None:
            self.fail(slot, refusal)
            self._wake()
            return
        slot.budget_bytes = budget.bytes
        kind = "swap" if slot.swap_pending else "cold start"
        gpu_text = (
            budget.reason if budget.utilization is None else f"{budget.reason} -> {budget.utilization:g}"
        )
        log.info(
            "loading %s (%s, %s) from %s; GPU memory: %s",
            route.primary_id,
            route.name,
            kind,
            route.model,
            gpu_text,
        )
        # A load is abandoned by resolving its abort future: a stop, a reload that removes
        # the route, or this timer. The model fails the moment it resolves (its waiters
        # get 503 at once); the operation then returns Abandoned and reclaim follows.
        loop = asyncio.get_running_loop()
        abort: asyncio.Future[str] = loop.create_future()
        slot.abort = abort
        timeout = self._host().start_timeout_seconds
        timer = loop.call_later(timeout, _resolve, abort, f"loading took longer than {timeout:g} s")
        abort.add_done_callback(lambda _: self._abandoned(slot, abort))
        work = operations.load(
            self._factory,
            sized_route(route, budget),
            self._host(),
            abort=abort,
            monitor=self._gpu,
            before=before,
            started=started,
            clock=self._clock,
        )
        self.begin(slot, work, lambda outcome: self._loaded(slot, outcome, kind, before, timer))

    def _abandoned(self, slot: Slot, abort: asyncio.Future[str]) -> None:
        if slot.abort is abort and not abort.cancelled():  # still loading: nothing applied yet
            slot.abort = None
            self.fail(slot, abort.result())

    def _loaded(
        self,
        slot: Slot,
        outcome: LoadOutcome,
        kind: str,
        before: GpuMemory | None,
        timer: asyncio.TimerHandle,
    ) -> None:
        timer.cancel()
        slot.abort = None
        if isinstance(outcome, Failed):
            self.fail(slot, outcome.reason)
            return
        if isinstance(outcome, Abandoned):
            if slot.state is ModelState.LOADING:  # normally already failed by _abandoned
                self.fail(slot, outcome.reason)
            work = operations.reclaim(
                outcome,
                monitor=self._gpu,
                before=before,
                settle_seconds=self._host().vram_settle_seconds,
                clock=self._clock,
            )
            self.begin(slot, work, lambda _: None)
            return
        if outcome.measured_bytes is not None:
            slot.measured_bytes = outcome.measured_bytes
        self.margins.observe(slot.route, self._gpu.name, outcome.measured_bytes, slot.budget_bytes)
        slot.backend = outcome.backend
        slot.engine_start = engine_start_of(outcome.backend)
        slot.probe = outcome.probe
        slot.standby_problem = outcome.standby_problem
        if outcome.standby_problem not in (None, self._standby_unavailable()):
            log.warning(
                "%s will not sleep (standby): %s; it swaps by shutdown",
                slot.route.primary_id,
                outcome.standby_problem,
            )
        slot.to(ModelState.READY)
        slot.ready_at = slot.last_used = self._clock()
        slot.loads += 1
        slot.cold_starts.append(outcome.elapsed)
        slot.last_error = slot.failed_at = None
        if slot.swap_pending:
            slot.swaps += 1
            slot.swap_pending = False
        memory = f", {slot.measured_bytes / GIB:.2f} GiB" if slot.measured_bytes is not None else ""
        log.info("ready: %s in %.1f s (%s%s)", slot.route.primary_id, outcome.elapsed, kind, memory)

    def unload(self, slot: Slot) -> None:
        route = slot.route
        reason = slot.evicting or "requested"
        backend = slot.backend
        # An asleep engine gave most of its memory back already; any other all of it.
        asleep = slot.state is ModelState.ASLEEP
        expected = slot.asleep_gpu_bytes if asleep else slot.measured_bytes
        slot.to(ModelState.UNLOADING)
        if slot.active:
            drain = self._host().drain_timeout_seconds
            log.warning(
                "unloading %s with %d request(s) still running after the %g s drain bound",
                route.primary_id,
                len(slot.active),
                drain,
            )
            for lease in slot.active:
                lease.revoked = (
                    f"{route.primary_id} was unloaded ({reason}) before this request "
                    f"finished (drain bound {drain:g} s)"
                )
            slot.active = set()
        started = self._clock()
        before = self._gpu.memory()
        failure = backend.failure() if backend is not None else None

        def stopped(_: operations.Stopped) -> None:
            slot.backend = None
            slot.budget_bytes = None
            slot.evicting = None
            slot.drain_started = None
            slot.drain_bounded = True
            slot.to_standby = False
            slot.probe = None  # standby_problem stays: /stats says why the last engine could not sleep
            slot.asleep_ram_bytes = slot.asleep_gpu_bytes = None
            slot.evictions += 1
            slot.to(ModelState.STOPPED)
            if failure is not None:
                slot.last_error = failure
            work = operations.memory_back(
                monitor=self._gpu,
                before=before,
                expected_bytes=expected,
                settle_seconds=self._host().vram_settle_seconds,
                clock=self._clock,
            )
            self.begin(slot, work, unloaded)

        def unloaded(back: Reclaimed) -> None:
            freed = (
                f", {back.freed_bytes / GIB:.2f} GiB GPU memory back" if back.freed_bytes is not None else ""
            )
            took = self._clock() - started
            log.info("unloaded %s (%s) in %.1f s%s", route.primary_id, reason, took, freed)

        self.begin(slot, operations.unload(backend, route), stopped)

    def sleep(self, slot: Slot, ram_bytes: int) -> None:
        """Put a drained model to sleep instead of unloading it (standby on, RAM allowing)."""
        backend = slot.backend
        assert isinstance(backend, Sleeper)
        reason = slot.evicting or "requested"
        level = slot.route.sleep_level
        slot.to(ModelState.SLEEPING)
        log.info("putting %s to sleep (%s, level %d)", slot.route.primary_id, reason, level)

        def slept(outcome: Slept | Failed) -> None:
            if isinstance(outcome, Failed):
                self._standby_failed(slot, outcome.reason)
                slot.evicting = f"{reason}; its sleep failed"
                self.unload(slot)  # an engine in an unknown state is shut down
                return
            slot.to(ModelState.ASLEEP)
            slot.evicting = slot.drain_started = None
            slot.drain_bounded = True
            slot.to_standby = False
            slot.sleeps += 1
            slot.asleep_ram_bytes = outcome.ram_bytes if outcome.ram_bytes is not None else ram_bytes
            freed = outcome.freed_bytes
            if slot.measured_bytes is not None and freed is not None:
                slot.asleep_gpu_bytes = max(0, slot.measured_bytes - freed)
            log.info(
                "asleep: %s in %.1f s (level %d%s, %.2f GiB of host RAM held)",
                slot.route.primary_id,
                outcome.elapsed,
                level,
                f", {freed / GIB:.2f} GiB GPU memory back" if freed is not None else "",
                slot.asleep_ram_bytes / GIB,
            )

        work = operations.sleep(
            backend,
            level,
            monitor=self._gpu,
            expected_bytes=slot.measured_bytes,
            settle_seconds=self._host().vram_settle_seconds,
            clock=self._clock,
        )
        self.begin(slot, work, slept)

    def wake(self, slot: Slot) -> None:
        """Wake an asleep model for its waiting requests; none is served before its probe
        matched. A failed wake shuts the engine down and the model cold-loads."""
        backend, probe = slot.backend, slot.probe
        assert isinstance(backend, Sleeper) and probe is not None
        slot.to(ModelState.WAKING)
        slot.load_started = self._clock()
        level = slot.route.sleep_level
        log.info("waking %s (level %d)", slot.route.primary_id, level)

        def woke(outcome: Woke | WakeFailed) -> None:
            if isinstance(outcome, WakeFailed):
                slot.wake_failures += 1
                slot.last_wake_error = outcome.reason
                self._standby_failed(slot, outcome.reason)
                slot.evicting = "its wake failed; a cold load follows"
                self.unload(slot)  # its waiting requests stay queued: the next pass loads it
                return
            slot.to(ModelState.READY)
            slot.ready_at = slot.last_used = self._clock()
            slot.wakes += 1
            slot.wake_seconds.append(outcome.elapsed)
            slot.asleep_ram_bytes = slot.asleep_gpu_bytes = None
            slot.swap_pending = False
            log.info("ready: %s in %.2f s (woken, probe matched)", slot.route.primary_id, outcome.elapsed)

        self.begin(slot, operations.wake(backend, level, probe, clock=self._clock), woke)

    def _standby_failed(self, slot: Slot, reason: str) -> None:
        slot.standby_failures += 1
        log.error("standby of %s failed: %s", slot.route.primary_id, reason)
        if slot.standby_failures >= STANDBY_FAILURE_LIMIT:
            slot.standby_disabled = (
                f"{slot.standby_failures} failed sleeps or wakes since the host started; last: {reason}"
            )
            log.error(
                "standby disabled for %s until the host restarts (%d failures); it swaps by shutdown",
                slot.route.primary_id,
                slot.standby_failures,
            )

    def fail(self, slot: Slot, reason: str) -> None:
        slot.to(ModelState.FAILED)
        slot.budget_bytes = None
        slot.last_error = reason
        slot.failed_at = self._clock()
        slot.swap_pending = False
        log.error("failed to load %s (%s): %s", slot.route.primary_id, slot.route.model, reason)
        slot.failed_loads += 1
        slot.refuse("load_failed", len(slot.waiting))
        slot.reject_waiting(failed_error(slot, self._host().retry_backoff_seconds))


def _resolve(abort: asyncio.Future[str], reason: str) -> None:
    if not abort.done():
        abort.set_result(reason)


def _short_of_memory(need: int | None, before: GpuMemory | None) -> str | None:
    if before is None or need is None or need <= before.free_bytes:
        return None
    return f"needs {need / GIB:.1f} GiB of GPU memory but only {before.free_bytes / GIB:.1f} GiB is free"


def need_of(slot: Slot, policy: str, total: int | None) -> int | None:
    """What loading `slot` needs, in bytes (llmhost.lifecycle.sizing), None when unknown."""
    return need_bytes(
        slot.route, policy, total, measured_bytes=slot.measured_bytes, estimate_bytes=slot.estimated_bytes
    )


def failed_error(slot: Slot, retry_after: float) -> ModelUnavailable:
    return ModelUnavailable(
        f"{slot.route.primary_id} failed to load: {(slot.last_error or '').rstrip('.')}.",
        retry_after=retry_after,
    )

"""The scheduler's hands: start a GPU operation, apply its outcome to the slot.

Called only by the scheduler (llmhost.lifecycle.scheduler), from its pass, always on the
event loop: the state changes made here are the scheduler's. The slow work itself is in
llmhost.lifecycle.operations, which returns outcomes and never touches a slot. One
operation runs at a time (`op`); when it finishes, its task wakes the scheduler, and the
next pass applies its outcome (`finish`). A load or an unload may take two steps (stop
the engine, then wait for its memory): the apply of the first starts the second, in the
same pass, so nothing else gets in between.

Every operation has an *abort* future. The scheduler resolves it when the operation's
time bound passes on its clock (a load's start timeout, a sleep's or a wake's bound) or
when a load is abandoned (a stop, a reload, an unload request); the slow work watches it
at every await and returns early. An outcome that arrives for a slot that has moved on
(the scheduler contained an error in its handling meanwhile) is never dropped: an engine
it carries is queued for shutdown (`orphans`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from llmhost.backends.base import BackendFactory, Sleeper
from llmhost.backends.vllm.start_report import engine_start_of
from llmhost.config import HostConfig
from llmhost.errors import ModelUnavailable
from llmhost.gpu.margin import EngineMargins
from llmhost.gpu.monitor import GpuMemory, GpuMonitor
from llmhost.lifecycle import operations
from llmhost.lifecycle.clock import Clock
from llmhost.lifecycle.operations import (
    Abandoned,
    Failed,
    Loaded,
    LoadOutcome,
    Reclaimed,
    Slept,
    WakeFailed,
    Woke,
)
from llmhost.lifecycle.sizing import engine_budget, need_bytes, sized_route
from llmhost.lifecycle.slot import Slot
from llmhost.lifecycle.state import ModelState
from llmhost.units import GIB

log = logging.getLogger("llmhost.lifecycle")

# Failed sleeps or wakes after which a route's standby is off until the host restarts.
STANDBY_FAILURE_LIMIT = 2

# The slow work of an operation, given its abort future.
Work = Callable[[asyncio.Future[str]], Coroutine[Any, Any, Any]]


@dataclass(eq=False)
class Operation:
    """The GPU operation in progress: its task, what to do with its outcome, its abort."""

    slot: Slot | None  # None: shutting down an engine no model owns any more (orphans)
    kind: str  # load, reclaim, unload, memory, sleep, wake, orphan
    task: asyncio.Task[Any]
    apply: Callable[[Any], None]
    abort: asyncio.Future[str]
    epoch: int  # the slot's epoch when it began: a different one means the slot moved on
    deadline: float | None = None  # on the scheduler's clock; then `abort` with `overdue`
    overdue: str = ""

    def stop(self, reason: str) -> None:
        if not self.abort.done():
            self.abort.set_result(reason)


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
        self.margins = margins if margins is not None else EngineMargins()  # llmhost.gpu.margin
        self.op: Operation | None = None  # the GPU operation in progress
        # Engines no model owns any more, shut down as the next GPU operations: a load's
        # outcome for a slot that moved on, or the engine of a model whose handling raised.
        self.orphans: list[Abandoned] = []

    def begin(
        self,
        slot: Slot | None,
        kind: str,
        work: Work,
        apply: Callable[[Any], None],
        *,
        bound: float | None = None,
        overdue: str = "",
    ) -> None:
        """Start `work` as the GPU operation; the pass applies its outcome with `apply`.
        `bound`: seconds on the scheduler's clock after which its abort resolves with
        `overdue` as the reason."""
        assert self.op is None, "one GPU operation at a time"
        loop = asyncio.get_running_loop()
        abort: asyncio.Future[str] = loop.create_future()
        name = f"gpu-op-{kind}-{slot.route.name if slot is not None else 'orphan'}"
        task = asyncio.create_task(work(abort), name=name)
        deadline = None if bound is None else self._clock() + bound
        epoch = slot.epoch if slot is not None else 0
        self.op = Operation(slot, kind, task, apply, abort, epoch, deadline, overdue)
        task.add_done_callback(lambda _: self._wake())

    def finish(self) -> None:
        """Apply the finished operation's outcome (called by the pass once its task is done).
        An error in the slow work itself is raised here, for the scheduler to contain."""
        op = self.op
        assert op is not None and op.task.done()
        self.op = None
        if op.task.cancelled():
            raise RuntimeError(f"the {op.kind} operation was cancelled")
        outcome = op.task.result()
        if op.slot is not None and op.slot.epoch != op.epoch:
            self.adopt(outcome)  # the slot moved on: reclaim what the outcome holds
            return
        op.apply(outcome)

    def adopt(self, outcome: Any) -> None:
        """Queue for shutdown the engine an outcome holds that no model will own."""
        if isinstance(outcome, Loaded):
            self.orphans.append(Abandoned("its model moved on", outcome.backend.route, outcome.backend))
        elif isinstance(outcome, Abandoned) and outcome.backend is not None:
            self.orphans.append(outcome)

    def reclaim_orphan(self) -> None:
        """Shut the next orphaned engine down and wait for its memory."""
        orphan = self.orphans.pop(0)
        log.warning(
            "shutting down an engine of %s that no model owns: %s", orphan.route.primary_id, orphan.reason
        )

        def work(_: asyncio.Future[str]) -> Coroutine[Any, Any, Reclaimed]:
            return operations.reclaim(
                orphan,
                monitor=self._gpu,
                before=self._gpu.memory(),
                settle_seconds=self._host().vram_settle_seconds,
                clock=self._clock,
            )

        self.begin(None, "orphan", work, lambda _: None)

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
        timeout = self._host().start_timeout_seconds

        def work(abort: asyncio.Future[str]) -> Coroutine[Any, Any, LoadOutcome]:
            return operations.load(
                self._factory,
                sized_route(route, budget),
                self._host(),
                abort=abort,
                monitor=self._gpu,
                before=before,
                started=started,
                clock=self._clock,
            )

        self.begin(
            slot,
            "load",
            work,
            lambda outcome: self._loaded(slot, outcome, kind, before),
            bound=timeout,
            overdue=f"loading took longer than {timeout:g} s",
        )

    def abandon(self, slot: Slot, reason: str, *, failed: bool) -> bool:
        """Give up the load in progress of `slot` (False: it is not loading). The model
        goes to `unloading` at once: the load's engine is taken back when its operation
        returns, then the model is stopped, or failed when `failed` (the start timeout).
        Its waiting requests are the caller's to answer."""
        op = self.op
        if slot.state is not ModelState.LOADING or op is None or op.slot is not slot or op.kind != "load":
            return False
        op.stop(reason)
        slot.to(ModelState.UNLOADING)
        slot.abandoned, slot.abandon_failed = reason, failed
        slot.budget_bytes = None
        slot.swap_pending = False
        log.warning("abandoning the load of %s: %s", slot.route.primary_id, reason)
        return True

    def _loaded(self, slot: Slot, outcome: LoadOutcome, kind: str, before: GpuMemory | None) -> None:
        if slot.abandoned is not None:
            self._take_back(slot, outcome, before)
            return
        if isinstance(outcome, Failed):
            self.fail(slot, outcome.reason)
            return
        if isinstance(outcome, Abandoned):  # only abandon() resolves a load's abort
            raise RuntimeError(f"a load returned abandoned ({outcome.reason}) that was not abandoned")
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
        slot.cold_starts.add(outcome.elapsed)
        slot.last_error = slot.failed_at = None
        if slot.swap_pending:
            slot.swaps += 1
            slot.swap_pending = False
        memory = f", {slot.measured_bytes / GIB:.2f} GiB" if slot.measured_bytes is not None else ""
        log.info("ready: %s in %.1f s (%s%s)", slot.route.primary_id, outcome.elapsed, kind, memory)

    def _take_back(self, slot: Slot, outcome: LoadOutcome, before: GpuMemory | None) -> None:
        """The outcome of an abandoned load, whatever it is: an engine it started is stopped
        and its memory waited for (`reclaim`), never kept or dropped."""
        reason = slot.abandoned or "abandoned"
        if isinstance(outcome, Loaded):  # it finished starting just as it was abandoned
            outcome = Abandoned(reason, slot.route, outcome.backend)
        if not isinstance(outcome, Abandoned) or outcome.backend is None:
            self._abandon_done(slot)  # failed (already stopped), or abandoned before it began
            return
        taken = outcome

        def work(_: asyncio.Future[str]) -> Coroutine[Any, Any, Reclaimed]:
            return operations.reclaim(
                taken,
                monitor=self._gpu,
                before=before,
                settle_seconds=self._host().vram_settle_seconds,
                clock=self._clock,
            )

        self.begin(slot, "reclaim", work, lambda _: self._abandon_done(slot))

    def _abandon_done(self, slot: Slot) -> None:
        reason = slot.abandoned or "abandoned"
        failed = slot.abandon_failed
        slot.abandoned, slot.abandon_failed = None, False
        slot.last_error = reason if failed else f"the load was abandoned: {reason}"
        if failed:
            slot.to(ModelState.FAILED)
            slot.failed_at = self._clock()
            slot.failed_loads += 1
        else:
            slot.to(ModelState.STOPPED)
        log.info("the abandoned load of %s is taken back (%s)", slot.route.primary_id, reason)

    def unload(self, slot: Slot) -> None:
        route = slot.route
        reason = slot.evicting or "requested"
        backend = slot.backend
        # An asleep engine gave most of its memory back already; any other all of it.
        asleep = slot.state is ModelState.ASLEEP
        expected = slot.asleep_gpu_bytes if asleep else slot.measured_bytes
        slot.to(ModelState.UNLOADING)
        failure = backend.failure() if backend is not None else None
        if slot.active:
            drain = self._host().drain_timeout_seconds
            if failure is not None:
                why = f"{route.primary_id} stopped working before this request finished: {failure}"
            else:
                why = (
                    f"{route.primary_id} was unloaded ({reason}) before this request "
                    f"finished (drain bound {drain:g} s)"
                )
                log.warning(
                    "unloading %s with %d request(s) still running after the %g s drain bound",
                    route.primary_id,
                    len(slot.active),
                    drain,
                )
            for lease in slot.active:
                lease.revoked = why
            slot.active = set()
        started = self._clock()
        before = self._gpu.memory()

        def stopped(_: operations.Stopped) -> None:
            slot.backend = None
            slot.budget_bytes = None
            slot.evicting = None
            slot.drain_deadline = None
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
            self.begin(slot, "memory", lambda _: work, unloaded)

        def unloaded(back: Reclaimed) -> None:
            freed = (
                f", {back.freed_bytes / GIB:.2f} GiB GPU memory back" if back.freed_bytes is not None else ""
            )
            took = self._clock() - started
            log.info("unloaded %s (%s) in %.1f s%s", route.primary_id, reason, took, freed)

        self.begin(slot, "unload", lambda _: operations.unload(backend, route), stopped)

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
            slot.evicting = slot.drain_deadline = None
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

        def work(abort: asyncio.Future[str]) -> Coroutine[Any, Any, Slept | Failed]:
            return operations.sleep(
                backend,
                level,
                abort=abort,
                monitor=self._gpu,
                expected_bytes=slot.measured_bytes,
                settle_seconds=self._host().vram_settle_seconds,
                clock=self._clock,
            )

        bound = operations.SLEEP_TIMEOUT_SECONDS
        self.begin(slot, "sleep", work, slept, bound=bound, overdue=f"took longer than {bound:g} s")

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
            slot.wake_seconds.add(outcome.elapsed)
            slot.asleep_ram_bytes = slot.asleep_gpu_bytes = None
            slot.swap_pending = False
            log.info("ready: %s in %.2f s (woken, probe matched)", slot.route.primary_id, outcome.elapsed)

        def work(abort: asyncio.Future[str]) -> Coroutine[Any, Any, Woke | WakeFailed]:
            return operations.wake(backend, level, probe, abort=abort, clock=self._clock)

        bound = operations.WAKE_TIMEOUT_SECONDS
        self.begin(slot, "wake", work, woke, bound=bound, overdue=f"took longer than {bound:g} s")

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

    def contain(self, slot: Slot, reason: str) -> None:
        """An error in the handling of `slot` (a bug, or a dependency that raised): put the
        model in a safe state, whatever it was doing. It is failed with the reason; its
        requests get 503 (in flight: their leases are revoked); an engine it holds is shut
        down as the next GPU operation; an operation of its own still running is aborted,
        and its outcome is reclaimed when it comes (the epoch moved on)."""
        slot.epoch += 1
        op = self.op
        stops_itself = False
        if op is not None and op.slot is slot:
            op.stop(reason)
            stops_itself = op.kind in ("unload", "reclaim")  # that operation stops the engine
        if slot.backend is not None and not stops_itself:
            self.orphans.append(Abandoned(reason, slot.route, slot.backend))
        slot.backend = None
        for lease in slot.active:
            lease.revoked = f"{slot.route.primary_id} failed: {reason}"
        slot.active = set()
        slot.force(ModelState.FAILED)
        slot.evicting = slot.drain_deadline = slot.abandoned = None
        slot.abandon_failed = slot.to_standby = slot.swap_pending = False
        slot.probe = slot.budget_bytes = None
        slot.asleep_ram_bytes = slot.asleep_gpu_bytes = None
        slot.failed_at = self._clock()
        slot.last_error = reason
        slot.failed_loads += 1
        slot.count_refused("load_failed", len(slot.waiting))
        slot.reject_waiting(failed_error(slot, self._host().retry_backoff_seconds))

    def fail(self, slot: Slot, reason: str) -> None:
        slot.to(ModelState.FAILED)
        slot.budget_bytes = None
        slot.last_error = reason
        slot.failed_at = self._clock()
        slot.swap_pending = False
        log.error("failed to load %s (%s): %s", slot.route.primary_id, slot.route.model, reason)
        slot.failed_loads += 1
        slot.count_refused("load_failed", len(slot.waiting))
        slot.reject_waiting(failed_error(slot, self._host().retry_backoff_seconds))


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

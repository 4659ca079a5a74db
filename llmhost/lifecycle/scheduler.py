"""The scheduling pass: the one owner of every model's state.

`run` wakes on any poke (a new ticket, a released lease, a finished GPU operation, a
request to close, reload or unload, a timer on its clock) and runs `_schedule`, a
synchronous pass over all models, so nothing changes between a decision and its action.
The pass applies the outcome of a finished GPU operation (llmhost.lifecycle.runner),
does for each model what must not wait (llmhost.lifecycle.model_pass: leases, refusals,
reloads, evictions marked) and chooses the next GPU operation
(llmhost.lifecycle.choice). Every state change happens in a pass; what the pass and the
transitions share is its `ctx` (llmhost.lifecycle.context).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from llmhost.backends.base import BackendFactory
from llmhost.config import HostConfig
from llmhost.errors import ModelUnavailable
from llmhost.gpu.margin import EngineMargins
from llmhost.gpu.monitor import GpuMonitor
from llmhost.lifecycle import model_pass
from llmhost.lifecycle.choice import choose_operation
from llmhost.lifecycle.clock import Clock
from llmhost.lifecycle.context import Context, Preflight
from llmhost.lifecycle.failing import contain
from llmhost.lifecycle.loading import abandon
from llmhost.lifecycle.operations import Abandoned
from llmhost.lifecycle.runner import Operation, Runner
from llmhost.lifecycle.slot import Lease, Slot
from llmhost.lifecycle.state import has_engine
from llmhost.lifecycle.unloading import reclaim_orphan

log = logging.getLogger("llmhost.lifecycle")


class Scheduler:
    def __init__(
        self,
        host: HostConfig,
        slots: dict[str, Slot],
        factory: BackendFactory,
        gpu: GpuMonitor,
        *,
        clock: Clock,
        preflight: Preflight | None,
        route_changed: Callable[[], None],
        margins: EngineMargins | None = None,
    ) -> None:
        self._poked = asyncio.Event()
        self._clock = clock
        self._runner = Runner(clock, self.poke)
        self.ctx = Context(
            host=host,
            slots=slots,
            factory=factory,
            gpu=gpu,
            clock=clock,
            margins=margins if margins is not None else EngineMargins(),
            runner=self._runner,
            poke=self.poke,
            route_changed=route_changed,
            preflight=preflight,
        )
        self.closing = False
        self.stopped = asyncio.Event()  # set when closing and everything is stopped
        self.passes = 0  # passes run so far
        self._pass_waiters: list[asyncio.Future[None]] = []

    @property
    def orphans(self) -> list[Abandoned]:
        """Engines no model owns, waiting to be shut down."""
        return self._runner.orphans

    @property
    def op(self) -> Operation | None:
        """The GPU operation in progress, if any."""
        return self._runner.op

    def poke(self) -> None:
        """Run a pass soon: something it should look at has changed."""
        self._poked.set()

    async def run(self) -> None:
        while True:
            self._poked.clear()
            deadline = self._schedule()
            self._passed()
            await asyncio.sleep(0)  # a pass that poked itself still lets the others run first
            await self._clock.wait(self._poked, deadline)

    async def next_pass(self) -> None:
        """Return after the next pass: every state change happens in one, so a caller
        waiting for a state checks again each time."""
        waiter = asyncio.get_running_loop().create_future()
        self._pass_waiters.append(waiter)
        await waiter

    async def settled(self) -> None:
        """Return once every event so far has had its pass and no GPU operation runs:
        nothing changes now until a new event or a timer."""
        while self.passes == 0 or self._poked.is_set() or self._runner.op is not None:
            await self.next_pass()

    def _passed(self) -> None:
        self.passes += 1
        waiters, self._pass_waiters = self._pass_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def grant(self, slot: Slot) -> Lease | None:
        """A lease on `slot` if it is ready and under its limit, else None: the only place
        a lease is made (the pass grants queued tickets with it, `acquire` its fast path)."""
        return model_pass.grant(self.ctx, slot)

    def request_unload(self, slot: Slot) -> asyncio.Future[None]:
        """Unload `slot` now (llmhost unload): the future resolves once it holds no engine
        and its memory is back."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slot.unload_waiters.append(done)
        slot.unload_requested = True
        self.poke()
        return done

    def _schedule(self) -> float | None:
        """One decision pass. Returns when the next timer is due (None: nothing pending)."""
        now = self._clock()
        deadlines: list[float] = []
        runner = self._runner
        op = runner.op
        if op is not None and op.task.done():
            self._finish(op)
        op = runner.op
        try:
            self._check_operation(now, deadlines)
        except Exception as exc:
            if op is None or op.slot is None:
                raise
            self._contain(op.slot, exc)
        for slot in list(self.ctx.slots.values()):
            try:
                self._handle(slot, now, deadlines)
            except Exception as exc:
                self._contain(slot, exc)
        if runner.op is None:
            self._next_operation(now, deadlines)
        if runner.op is None and runner.orphans:
            self._next_operation(now, deadlines)  # an error contained just now left an engine
        op = runner.op
        if op is not None and op.deadline is not None and not op.abort.done():
            deadlines.append(op.deadline)  # an operation started in this pass has its bound too
        if self.closing and op is None and not self._holds_engines():
            self.stopped.set()
        return min(deadlines, default=None)

    def _handle(self, slot: Slot, now: float, deadlines: list[float]) -> None:
        """Everything the pass does for one model, except starting a GPU operation."""
        ctx = self.ctx
        if model_pass.apply_reload(ctx, slot, now):
            return
        if self.closing:
            model_pass.close_slot(ctx, slot, now)
        model_pass.check_dead(ctx, slot, now)  # before anything is granted to it
        model_pass.check_unload(ctx, slot, now)
        model_pass.grant_waiting(ctx, slot)
        model_pass.check_waits(ctx, slot, now, deadlines)
        model_pass.check_failed(ctx, slot, now, deadlines)
        model_pass.check_idle(ctx, slot, now, deadlines)

    def _contain(self, slot: Slot, exc: Exception) -> None:
        """An error in one model's handling: that model fails safely, the pass goes on for
        the others (an error that escapes the pass ends the scheduler: see the manager)."""
        log.error(
            "internal error while handling %s: it is marked failed and its engine shut down",
            slot.route.primary_id,
            exc_info=exc,
        )
        # No poke of its own: an error that recurs in every pass must not make passes
        # run back to back. The engine it leaves is shut down at the end of this pass.
        contain(self.ctx, slot, f"internal error in the host: {type(exc).__name__}: {exc}")

    def _finish(self, op: Operation) -> None:
        try:
            self._runner.finish()
        except Exception as exc:
            if op.slot is None:  # an orphan's shutdown: nothing to fail, its engine is stopped or lost
                log.error("shutting down an orphaned engine failed", exc_info=exc)
            else:
                self._contain(op.slot, exc)

    def _check_operation(self, now: float, deadlines: list[float]) -> None:
        """The operation in progress past its bound (a load's start timeout, a sleep's or a
        wake's): abort it. An abandoned load's waiters get their 503 now."""
        op = self._runner.op
        if op is None or op.deadline is None or op.abort.done():
            return
        if now < op.deadline:
            deadlines.append(op.deadline)
            return
        slot = op.slot
        if op.kind == "load" and slot is not None:
            if abandon(self.ctx, slot, op.overdue, failed=True):
                slot.count_refused("start_timeout", len(slot.waiting))
                slot.reject_waiting(
                    ModelUnavailable(
                        f"{slot.route.primary_id} did not become ready: {op.overdue}. Retry later; "
                        "START_TIMEOUT_SECONDS sets the limit.",
                        retry_after=self.ctx.host.retry_backoff_seconds or 30,
                    )
                )
                self.poke()
        else:
            op.stop(op.overdue)

    def _holds_engines(self) -> bool:
        return bool(self._runner.orphans) or any(has_engine(s.state) for s in self.ctx.slots.values())

    def _next_operation(self, now: float, deadlines: list[float]) -> None:
        # 0. Engines no model owns: shut them down before anything else takes memory.
        if self._runner.orphans:
            reclaim_orphan(self.ctx)
            return
        handling: list[Slot] = []  # the model being decided on, to contain an error in it
        try:
            choose_operation(self.ctx, now, deadlines, handling, closing=self.closing)
        except Exception as exc:
            if not handling:
                raise
            self._contain(handling[-1], exc)

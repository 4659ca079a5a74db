"""Unloading a model: revoke what still runs past the drain, stop its engine, then wait
for its memory to come back before anything else loads (two GPU operations, the second
started by the first's outcome in the same pass); and shutting down an engine no model
owns any more (`reclaim_orphan`).

Called by the scheduler's pass (llmhost.lifecycle.scheduler) and by the transitions that
end in a shutdown (a failed sleep or wake: llmhost.lifecycle.sleeping).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from llmhost.gpu.monitor import GpuMemory
from llmhost.lifecycle import operations
from llmhost.lifecycle.context import Context
from llmhost.lifecycle.operations import Reclaimed, Stopped
from llmhost.lifecycle.slot import Slot
from llmhost.lifecycle.state import ModelState
from llmhost.units import GIB

log = logging.getLogger("llmhost.lifecycle")


def unload(ctx: Context, slot: Slot) -> None:
    """Shut a drained (or overdue) model's engine down; a request still running is cut
    off with the reason."""
    route = slot.route
    reason = slot.eviction.reason if slot.eviction is not None else "requested"
    backend = slot.backend
    # An asleep engine gave most of its memory back already; any other all of it.
    asleep = slot.state is ModelState.ASLEEP
    expected = slot.standby.asleep_gpu_bytes if asleep else slot.measured_bytes
    slot.to(ModelState.UNLOADING)
    failure = backend.failure() if backend is not None else None
    if slot.active:
        _revoke(ctx, slot, reason, failure)
    steps = _Unload(ctx, slot, reason, ctx.clock(), ctx.gpu.memory(), expected, failure)
    ctx.runner.begin(slot, "unload", lambda _: operations.unload(backend, route), steps.stopped)


def _revoke(ctx: Context, slot: Slot, reason: str, failure: str | None) -> None:
    """The requests still running when the model goes: their leases say why."""
    route = slot.route
    drain = ctx.host.drain_timeout_seconds
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


@dataclass(eq=False)
class _Unload:
    """An unload's two steps after its start: the engine stopped, then its memory back."""

    ctx: Context
    slot: Slot
    reason: str
    started: float
    before: GpuMemory | None
    expected: int | None  # the GPU memory that should come back, when known
    failure: str | None  # why the engine had stopped working, if it had

    def stopped(self, _: Stopped) -> None:
        ctx, slot = self.ctx, self.slot
        slot.backend = None
        slot.budget_bytes = None
        slot.eviction = None
        slot.standby.forget_engine()
        slot.evictions += 1
        slot.to(ModelState.STOPPED)
        if self.failure is not None:
            slot.last_error = self.failure
        work = operations.memory_back(
            monitor=ctx.gpu,
            before=self.before,
            expected_bytes=self.expected,
            settle_seconds=ctx.host.vram_settle_seconds,
            clock=ctx.clock,
        )
        ctx.runner.begin(slot, "memory", lambda _: work, self.unloaded)

    def unloaded(self, back: Reclaimed) -> None:
        freed = f", {back.freed_bytes / GIB:.2f} GiB GPU memory back" if back.freed_bytes is not None else ""
        took = self.ctx.clock() - self.started
        log.info("unloaded %s (%s) in %.1f s%s", self.slot.route.primary_id, self.reason, took, freed)


def reclaim_orphan(ctx: Context) -> None:
    """Shut the next orphaned engine down and wait for its memory."""
    orphan = ctx.runner.orphans.pop(0)
    log.warning(
        "shutting down an engine of %s that no model owns: %s", orphan.route.primary_id, orphan.reason
    )
    before, settle = ctx.gpu.memory(), ctx.host.vram_settle_seconds
    ctx.runner.begin(
        None,
        "orphan",
        lambda _: operations.reclaim(
            orphan, monitor=ctx.gpu, before=before, settle_seconds=settle, clock=ctx.clock
        ),
        _nothing,
    )


def _nothing(_: object) -> None:
    """An orphan's shutdown has nothing to apply: no model owns it."""

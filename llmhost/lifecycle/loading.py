"""Loading a model: start its engine sized to its budget, apply the outcome, and give up
a load in progress (`abandon`), whose engine is then taken back, never kept or dropped.

Called by the scheduler's pass (llmhost.lifecycle.scheduler), on the event loop; the slow
work is llmhost.lifecycle.operations.load, run by the runner (llmhost.lifecycle.runner).
"""

from __future__ import annotations

import logging
from functools import partial

from llmhost.backends.base import start_report_of
from llmhost.gpu.monitor import GpuMemory
from llmhost.lifecycle import operations
from llmhost.lifecycle.context import Context
from llmhost.lifecycle.failing import fail
from llmhost.lifecycle.operations import Abandoned, Failed, Loaded, LoadOutcome
from llmhost.lifecycle.sizing import engine_budget, need_bytes, sized_route
from llmhost.lifecycle.slot import Slot
from llmhost.lifecycle.state import ModelState
from llmhost.units import GIB

log = logging.getLogger("llmhost.lifecycle")


def load(ctx: Context, slot: Slot, *, reserve_bytes: int = 0) -> None:
    """Start loading `slot`; `reserve_bytes` stays free for engines that will sleep
    beside it (llmhost.lifecycle.sizing.engine_budget)."""
    route, host = slot.route, ctx.host
    slot.to(ModelState.LOADING)
    slot.eviction = None
    started = slot.load_started = ctx.clock()
    before = ctx.gpu.memory()
    need = need_of(slot, host.policy, before.total_bytes if before else None)
    budget = engine_budget(
        route,
        host.policy,
        before,
        margin_bytes=ctx.margin_bytes(),
        estimate_bytes=slot.estimated_bytes,
        reserve_bytes=reserve_bytes,
    )
    refusal = short_of_memory(need, before) or budget.error
    if refusal is not None:
        fail(ctx, slot, refusal)
        ctx.poke()
        return
    slot.budget_bytes = budget.bytes
    kind = "swap" if slot.swap_pending else "cold start"
    gpu_text = budget.reason if budget.utilization is None else f"{budget.reason} -> {budget.utilization:g}"
    log.info(
        "loading %s (%s, %s) from %s; GPU memory: %s",
        route.primary_id,
        route.name,
        kind,
        route.model,
        gpu_text,
    )
    timeout = host.start_timeout_seconds
    sized = sized_route(route, budget)
    ctx.runner.begin(
        slot,
        "load",
        lambda abort: operations.load(
            ctx.factory,
            sized,
            host,
            abort=abort,
            monitor=ctx.gpu,
            before=before,
            started=started,
            clock=ctx.clock,
        ),
        partial(_loaded, ctx, slot, kind, before),
        bound=timeout,
        overdue=f"loading took longer than {timeout:g} s",
    )


def abandon(ctx: Context, slot: Slot, reason: str, *, failed: bool) -> bool:
    """Give up the load in progress of `slot` (False: it is not loading). The model
    goes to `unloading` at once: the load's engine is taken back when its operation
    returns, then the model is stopped, or failed when `failed` (the start timeout).
    Its waiting requests are the caller's to answer."""
    op = ctx.runner.op
    if slot.state is not ModelState.LOADING or op is None or op.slot is not slot or op.kind != "load":
        return False
    op.stop(reason)
    slot.to(ModelState.UNLOADING)
    slot.abandoned, slot.abandon_failed = reason, failed
    slot.budget_bytes = None
    slot.swap_pending = False
    log.warning("abandoning the load of %s: %s", slot.route.primary_id, reason)
    return True


def _loaded(ctx: Context, slot: Slot, kind: str, before: GpuMemory | None, outcome: LoadOutcome) -> None:
    """The load's outcome: ready, failed, or (abandoned meanwhile) its engine taken back."""
    if slot.abandoned is not None:
        _take_back(ctx, slot, outcome, before)
        return
    if isinstance(outcome, Failed):
        fail(ctx, slot, outcome.reason)
        return
    if isinstance(outcome, Abandoned):  # only abandon() resolves a load's abort
        raise RuntimeError(f"a load returned abandoned ({outcome.reason}) that was not abandoned")
    if outcome.measured_bytes is not None:
        slot.measured_bytes = outcome.measured_bytes
    ctx.margins.observe(slot.route, ctx.gpu.name, outcome.measured_bytes, slot.budget_bytes)
    slot.backend = outcome.backend
    slot.start_report = start_report_of(outcome.backend)
    slot.standby.probe = outcome.probe
    slot.standby.problem = outcome.standby_problem
    if outcome.standby_problem not in (None, ctx.standby.problem):
        log.warning(
            "%s will not sleep (standby): %s; it swaps by shutdown",
            slot.route.primary_id,
            outcome.standby_problem,
        )
    slot.to(ModelState.READY)
    slot.ready_at = slot.last_used = ctx.clock()
    slot.loads += 1
    slot.cold_starts.add(outcome.elapsed)
    slot.last_error = slot.failed_at = None
    if slot.swap_pending:
        slot.swaps += 1
        slot.swap_pending = False
    memory = f", {slot.measured_bytes / GIB:.2f} GiB" if slot.measured_bytes is not None else ""
    log.info("ready: %s in %.1f s (%s%s)", slot.route.primary_id, outcome.elapsed, kind, memory)


def _take_back(ctx: Context, slot: Slot, outcome: LoadOutcome, before: GpuMemory | None) -> None:
    """The outcome of an abandoned load, whatever it is: an engine it started is stopped
    and its memory waited for (`reclaim`), never kept or dropped."""
    reason = slot.abandoned or "abandoned"
    if isinstance(outcome, Loaded):  # it finished starting just as it was abandoned
        outcome = Abandoned(reason, slot.route, outcome.backend)
    if not isinstance(outcome, Abandoned) or outcome.backend is None:
        _abandon_done(ctx, slot)  # failed (already stopped), or abandoned before it began
        return
    taken = outcome
    settle = ctx.host.vram_settle_seconds
    ctx.runner.begin(
        slot,
        "reclaim",
        lambda _: operations.reclaim(
            taken, monitor=ctx.gpu, before=before, settle_seconds=settle, clock=ctx.clock
        ),
        lambda _: _abandon_done(ctx, slot),
    )


def _abandon_done(ctx: Context, slot: Slot) -> None:
    """The abandoned load's engine is back: the model is stopped, or failed."""
    reason = slot.abandoned or "abandoned"
    failed = slot.abandon_failed
    slot.abandoned, slot.abandon_failed = None, False
    slot.last_error = reason if failed else f"the load was abandoned: {reason}"
    if failed:
        slot.to(ModelState.FAILED)
        slot.failed_at = ctx.clock()
        slot.failed_loads += 1
    else:
        slot.to(ModelState.STOPPED)
    log.info("the abandoned load of %s is taken back (%s)", slot.route.primary_id, reason)


def short_of_memory(need: int | None, before: GpuMemory | None) -> str | None:
    """Why a load cannot begin now: it needs more than is free, said in GiB."""
    if before is None or need is None or need <= before.free_bytes:
        return None
    return f"needs {need / GIB:.1f} GiB of GPU memory but only {before.free_bytes / GIB:.1f} GiB is free"


def need_of(slot: Slot, policy: str, total: int | None) -> int | None:
    """What loading `slot` needs, in bytes (llmhost.lifecycle.sizing), None when unknown."""
    return need_bytes(
        slot.route, policy, total, measured_bytes=slot.measured_bytes, estimate_bytes=slot.estimated_bytes
    )

"""The next GPU operation, chosen once per pass when none runs: finish an eviction
already decided (to sleep or shut down), else bring in the model whose request has
waited longest, evicting others for it as the policy plans (llmhost.lifecycle.policy).

Called by the scheduler's pass (llmhost.lifecycle.scheduler); the operation it picks is
started by llmhost.lifecycle.loading, unloading or sleeping.
"""

from __future__ import annotations

import logging

from llmhost.errors import ModelUnavailable
from llmhost.lifecycle.context import Context
from llmhost.lifecycle.failing import fail
from llmhost.lifecycle.loading import load, need_of
from llmhost.lifecycle.model_pass import mark_evicting
from llmhost.lifecycle.policy import Candidate, plan_eviction
from llmhost.lifecycle.sizing import resident_hold_bytes
from llmhost.lifecycle.sleeping import sleep, wake
from llmhost.lifecycle.slot import Slot
from llmhost.lifecycle.standby import sleep_or_unload, standby_reserve
from llmhost.lifecycle.state import ModelState, has_engine, uses_gpu
from llmhost.lifecycle.unloading import unload

log = logging.getLogger("llmhost.lifecycle")


def choose_operation(
    ctx: Context, now: float, deadlines: list[float], handling: list[Slot], *, closing: bool
) -> None:
    """Start the next GPU operation, if one is due. `handling` ends with the model being
    decided on, for the scheduler to contain an error in it."""
    # 1. Finish evictions already decided: unload (or put to sleep) once drained or
    #    the drain bound passed.
    for slot in ctx.slots.values():
        handling.append(slot)
        eviction = slot.eviction
        if eviction is not None and slot.state is ModelState.ASLEEP:
            unload(ctx, slot)
            return
        if eviction is not None and slot.state is ModelState.READY:
            drain_deadline = eviction.drain_deadline
            overdue = drain_deadline is not None and now >= drain_deadline
            if not slot.active or overdue:
                evict(ctx, slot)
                return
            if drain_deadline is not None:
                deadlines.append(drain_deadline)
    if closing:
        return
    # 2. Bring in the model whose request has waited longest.
    startable = (ModelState.STOPPED, ModelState.FAILED, ModelState.ASLEEP)
    candidates = [s for s in ctx.slots.values() if s.waiting and s.state in startable and s.eviction is None]
    wanted = min(candidates, key=lambda s: s.oldest_wait() or 0.0, default=None)
    if wanted is None or wanted.estimate_pending:
        return  # an estimate in progress pokes the scheduler when it is done
    handling.append(wanted)
    if wanted.route.standby == "sleep" and not ctx.standby.known:
        # Its engine's size depends on whether engines will sleep beside it: wait for
        # vLLM's answer (the manager pokes the scheduler with it).
        return
    bring_in(ctx, wanted, now, deadlines, handling)


def bring_in(ctx: Context, wanted: Slot, now: float, deadlines: list[float], handling: list[Slot]) -> None:
    """Load or wake `wanted` if it fits now; else mark the models to evict for it."""
    asleep = wanted.state is ModelState.ASLEEP
    refused = ctx.preflight(wanted.route) if ctx.preflight is not None and not asleep else None
    if refused is not None:
        fail(ctx, wanted, refused)  # nothing was evicted for it
        ctx.poke()
        return
    others = [s for s in ctx.slots.values() if s is not wanted and has_engine(s.state)]
    gpu = ctx.gpu.memory()
    plan = plan_eviction(
        ctx.host.policy,
        wanted.route.name,
        need_of(wanted, ctx.host.policy, gpu.total_bytes if gpu else None),
        [candidate(s) for s in others],
        gpu,
        pinned=wanted.route.resident,
    )
    if not plan.fits:
        log.error("cannot load %s: %s", wanted.route.primary_id, plan.reason)
        wanted.count_refused("does_not_fit", len(wanted.waiting))
        wanted.reject_waiting(
            ModelUnavailable(f"{wanted.route.primary_id} cannot be loaded: {plan.reason}.", retry_after=60)
        )
        return
    if not plan.evict:
        if asleep:
            wake(ctx, wanted)
        else:
            load(ctx, wanted, reserve_bytes=standby_reserve(ctx, wanted) + resident_reserve(ctx, wanted))
        return
    wanted.swap_pending = True
    oldest = wanted.oldest_wait() or now
    for name in plan.evict:
        victim = ctx.slots[name]
        handling.append(victim)
        if victim.eviction is not None or victim.state not in (ModelState.READY, ModelState.ASLEEP):
            continue
        hold_until = max(victim.ready_at, oldest) + ctx.host.max_hold_seconds
        if victim.busy and now < hold_until:
            deadlines.append(hold_until)  # let it finish what it has, within the hold
            continue
        mark_evicting(ctx, victim, f"making room for {wanted.route.primary_id}", now, standby=True)
        ctx.poke()  # unload it in the next pass if it is already drained


def evict(ctx: Context, slot: Slot) -> None:
    """Take a drained (or overdue) model off the GPU, to sleep or shut down as standby's
    rules decide (llmhost.lifecycle.standby.sleep_or_unload)."""
    decision = sleep_or_unload(ctx, slot)
    if not decision.sleep:
        unload(ctx, slot)
    elif decision.shut_down_first is not None:
        # One GPU operation at a time: shut the first one down; the next pass re-plans.
        victim = ctx.slots[decision.shut_down_first]
        mark_evicting(ctx, victim, f"the standby RAM budget, for {slot.route.primary_id}", ctx.clock())
        unload(ctx, victim)
    else:
        sleep(ctx, slot, decision.ram_bytes)


def resident_reserve(ctx: Context, loading: Slot) -> int:
    """GPU memory to leave free for resident routes not loaded now (idle, unloaded,
    failed): the others size themselves as if they were (llmhost.lifecycle.sizing)."""
    gpu = ctx.gpu.memory()
    margin = ctx.margin_bytes()
    return sum(
        resident_hold_bytes(
            s.route,
            gpu.total_bytes if gpu else None,
            margin_bytes=margin,
            measured_bytes=s.measured_bytes,
            estimate_bytes=s.estimated_bytes,
        )
        for s in ctx.slots.values()
        if s is not loading and s.route.resident and not s.retired and not uses_gpu(s.state)
    )


def candidate(slot: Slot) -> Candidate:
    """A model on the GPU as the eviction policy sees it."""
    pinned = slot.route.resident
    if slot.state is ModelState.ASLEEP:
        return Candidate(
            slot.route.name,
            slot.busy,
            slot.last_used,
            slot.standby.asleep_gpu_bytes,
            asleep=True,
            pinned=pinned,
        )
    return Candidate(slot.route.name, slot.busy, slot.last_used, slot.measured_bytes, pinned=pinned)

"""What one scheduling pass does for one model, short of starting a GPU operation: grant
leases, answer the requests that must not wait (an unload, a failure, a wait past its
bound, a stop), apply a reload, and mark the model for eviction (idle, dead, taken down).

Functions of the pass (llmhost.lifecycle.scheduler), called on the event loop with the
shared context; the next GPU operation is chosen in llmhost.lifecycle.choice.
"""

from __future__ import annotations

import asyncio
import logging
import time

from llmhost.errors import ModelNotFound, ModelUnavailable, ShuttingDown
from llmhost.lifecycle.context import Context
from llmhost.lifecycle.failing import failed_error
from llmhost.lifecycle.loading import abandon
from llmhost.lifecycle.slot import Eviction, Lease, Slot
from llmhost.lifecycle.state import ModelState, has_engine

log = logging.getLogger("llmhost.lifecycle")


def grant(ctx: Context, slot: Slot) -> Lease | None:
    """A lease on `slot` if it is ready and under its limit, else None: the only place
    a lease is made (the pass grants queued tickets with it, `acquire` its fast path)."""
    if not (
        slot.state is ModelState.READY
        and slot.backend is not None
        and slot.eviction is None
        and slot.next_route is None
        and not slot.retired
        and len(slot.active) < ctx.host.max_in_flight
        and slot.backend.failure() is None  # a dead engine gets no new lease
    ):
        return None
    lease = Lease(slot, slot.backend)
    slot.active.add(lease)
    slot.last_hit = time.time()
    return lease


def grant_waiting(ctx: Context, slot: Slot) -> None:
    if slot.state is not ModelState.READY or slot.backend is None:
        return
    while slot.waiting:
        ticket = slot.waiting[0]
        if ticket.granted.done():  # its waiter gave up
            slot.waiting.popleft()
            continue
        lease = grant(ctx, slot)
        if lease is None:
            break
        slot.waiting.popleft()
        ticket.granted.set_result(lease)


def check_unload(ctx: Context, slot: Slot, now: float) -> None:
    """An unload request: the requests waiting for the model get 503 (they would load it
    right back), a load in progress is abandoned, a ready or asleep model is shut down
    after its drain; a sleep or a wake in progress finishes first."""
    if slot.unload_requested and slot.state not in (ModelState.SLEEPING, ModelState.WAKING):
        slot.unload_requested = False
        if slot.waiting:
            slot.count_refused("unloaded", len(slot.waiting))
            slot.reject_waiting(
                ModelUnavailable(
                    f"{slot.route.primary_id} was unloaded on request (llmhost unload); "
                    "send the request again to load it.",
                    retry_after=1,
                )
            )
        if slot.state is ModelState.LOADING:
            abandon(ctx, slot, "unloaded on request", failed=False)
        elif slot.state in (ModelState.READY, ModelState.ASLEEP):
            take_down(ctx, slot, "unloaded on request", now)
    if slot.unload_waiters and not slot.unload_requested:
        if not has_engine(slot.state) and not ctx.runner.busy_with(slot):
            resolve_all(slot.unload_waiters)


def check_waits(ctx: Context, slot: Slot, now: float, deadlines: list[float]) -> None:
    """Requests waiting past max_wait get 503, unless their model is loading or waking:
    that has its own bound, and cutting its requests would load it for nobody."""
    if not slot.waiting:
        return
    if slot.state in (ModelState.LOADING, ModelState.WAKING):
        return  # the load's outcome (or its bound) runs a pass, which looks again
    bound = ctx.max_wait
    while slot.waiting and slot.waiting[0].arrived + bound <= now:
        ticket = slot.waiting.popleft()
        if ticket.granted.done():
            continue  # its waiter gave up
        slot.count_refused("wait_timeout")
        ticket.granted.set_exception(
            ModelUnavailable(
                f"{slot.route.primary_id} did not become ready within {bound:g} s "
                f"(it is {slot.state.value}). Retry later; [host] max_wait_seconds sets the limit.",
                retry_after=30,
            )
        )
    if slot.waiting:
        deadlines.append(slot.waiting[0].arrived + bound)


def check_dead(ctx: Context, slot: Slot, now: float) -> None:
    """A ready model whose engine died is evicted at once: no drain (the requests still
    holding it cannot finish; their leases are revoked with the failure), no sleep,
    and its waiting requests wait for the cold load that follows."""
    if slot.state is not ModelState.READY or slot.backend is None:
        return
    failure = slot.backend.failure()
    eviction = slot.eviction
    if failure is None or (
        eviction is not None and eviction.drain_deadline is not None and eviction.drain_deadline <= now
    ):
        return
    log.error("%s: %s; unloading it now, the next request loads it again", slot.route.primary_id, failure)
    mark_evicting(ctx, slot, f"its engine stopped working ({failure})", now)
    assert slot.eviction is not None
    slot.eviction.drain_deadline = now


def apply_reload(ctx: Context, slot: Slot, now: float) -> bool:
    """Move a reloaded route toward its new settings; True if the slot is gone."""
    if slot.next_route is None and not slot.retired:
        return False
    why = "removed from the configuration" if slot.retired else "configuration changed"
    if slot.retired and slot.waiting:
        slot.reject_waiting(ModelNotFound(f"The route '{slot.route.name}' was removed."))
    if slot.state is ModelState.LOADING:
        # A load of the old settings serves nobody: a changed route's waiting requests
        # stay queued for the load with the new ones.
        abandon(ctx, slot, f"the route was {why}" if slot.retired else why, failed=False)
    elif slot.state in (ModelState.READY, ModelState.ASLEEP):
        take_down(ctx, slot, why, now)
    elif slot.state in (ModelState.STOPPED, ModelState.FAILED) and not ctx.runner.busy_with(slot):
        if slot.retired:
            resolve_all(slot.unload_waiters)
            del ctx.slots[slot.route.name]
            return True
        assert slot.next_route is not None
        slot.route, slot.next_route = slot.next_route, None
        slot.measured_bytes = slot.failed_at = None  # a fixed route retries at once
        slot.estimated_bytes = None
        ctx.route_changed()
    return False


def check_failed(ctx: Context, slot: Slot, now: float, deadlines: list[float]) -> None:
    """A failed model's waiting requests get 503 until its retry is due."""
    if slot.state is not ModelState.FAILED or not slot.waiting or slot.failed_at is None:
        return
    retry_at = slot.failed_at + ctx.host.retry_backoff_seconds
    if now < retry_at:
        slot.count_refused("load_failed", len(slot.waiting))
        slot.reject_waiting(failed_error(slot, retry_at - now))
        deadlines.append(retry_at)


def check_idle(ctx: Context, slot: Slot, now: float, deadlines: list[float]) -> None:
    # An asleep model's idle time runs from its last request, as if it were awake:
    # standby changes how fast it comes back, not how long it is kept.
    if slot.state not in (ModelState.READY, ModelState.ASLEEP) or slot.eviction is not None or slot.busy:
        return
    idle = slot.route.idle_unload_seconds(ctx.host)
    if idle is None:  # a resident route without idle_seconds of its own stays loaded
        return
    due = slot.last_used + idle
    if now >= due:
        mark_evicting(ctx, slot, f"idle for {idle:g} s", now)
    else:
        deadlines.append(due)


def close_slot(ctx: Context, slot: Slot, now: float) -> None:
    """The host is closing: refuse what waits, abandon a load, shut every engine down."""
    if slot.waiting:
        slot.count_refused("shutting_down", len(slot.waiting))
        slot.reject_waiting(ShuttingDown("The host is shutting down.", retry_after=30))
    if slot.state is ModelState.LOADING:
        abandon(ctx, slot, "the host is shutting down", failed=False)
    elif slot.state in (ModelState.READY, ModelState.ASLEEP):
        take_down(ctx, slot, "host shutting down", now)


def take_down(ctx: Context, slot: Slot, reason: str, now: float) -> None:
    """Shut a ready or asleep model down for good (a stop, a reload, an unload request):
    its in-flight requests drain within drain_timeout_seconds, and it never goes to
    sleep, even when an eviction that would have put it to sleep is already draining."""
    if slot.eviction is None:
        mark_evicting(ctx, slot, reason, now)
    assert slot.eviction is not None
    slot.eviction.to_standby = False  # only making room for another model sleeps


def mark_evicting(ctx: Context, slot: Slot, reason: str, now: float, *, standby: bool = False) -> None:
    """Evict `slot` once drained: no new leases from now; in-flight requests have until
    drain_timeout_seconds. Only making room for another model (`standby`) may sleep;
    idle, reloads and stops shut down."""
    slot.eviction = Eviction(reason, now + ctx.host.drain_timeout_seconds, standby)
    if slot.active:
        log.info(
            "evicting %s (%s): draining %d in-flight request(s)",
            slot.route.primary_id,
            reason,
            len(slot.active),
        )


def resolve_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()

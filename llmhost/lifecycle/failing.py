"""A model put in `failed`: a load that failed (`fail`), or an error in its handling
contained (`contain`); and the 503 its waiting requests get meanwhile (`failed_error`).
The pass retries it after retry_backoff_seconds (llmhost.lifecycle.model_pass)."""

from __future__ import annotations

import logging

from llmhost.errors import ModelUnavailable
from llmhost.lifecycle.context import Context
from llmhost.lifecycle.operations import Abandoned
from llmhost.lifecycle.slot import Slot
from llmhost.lifecycle.state import ModelState

log = logging.getLogger("llmhost.lifecycle")


def fail(ctx: Context, slot: Slot, reason: str) -> None:
    """A load failed (or was refused before it began): its waiting requests get 503."""
    slot.to(ModelState.FAILED)
    slot.budget_bytes = None
    slot.last_error = reason
    slot.failed_at = ctx.clock()
    slot.swap_pending = False
    log.error("failed to load %s (%s): %s", slot.route.primary_id, slot.route.model, reason)
    slot.failed_loads += 1
    slot.count_refused("load_failed", len(slot.waiting))
    slot.reject_waiting(failed_error(slot, ctx.host.retry_backoff_seconds))


def contain(ctx: Context, slot: Slot, reason: str) -> None:
    """An error in the handling of `slot` (a bug, or a dependency that raised): put the
    model in a safe state, whatever it was doing. It is failed with the reason; its
    requests get 503 (in flight: their leases are revoked); an engine it holds is shut
    down as the next GPU operation; an operation of its own still running is aborted,
    and its outcome is reclaimed when it comes (the epoch moved on)."""
    slot.epoch += 1
    op = ctx.runner.op
    stops_itself = False
    if op is not None and op.slot is slot:
        op.stop(reason)
        stops_itself = op.kind in ("unload", "reclaim")  # that operation stops the engine
    if slot.backend is not None and not stops_itself:
        ctx.runner.orphans.append(Abandoned(reason, slot.route, slot.backend))
    slot.backend = None
    for lease in slot.active:
        lease.revoked = f"{slot.route.primary_id} failed: {reason}"
    slot.active = set()
    slot.force(ModelState.FAILED)
    slot.eviction = slot.abandoned = None
    slot.abandon_failed = slot.swap_pending = False
    slot.budget_bytes = None
    slot.standby.forget_engine()
    slot.failed_at = ctx.clock()
    slot.last_error = reason
    slot.failed_loads += 1
    slot.count_refused("load_failed", len(slot.waiting))
    slot.reject_waiting(failed_error(slot, ctx.host.retry_backoff_seconds))


def failed_error(slot: Slot, retry_after: float) -> ModelUnavailable:
    return ModelUnavailable(
        f"{slot.route.primary_id} failed to load: {(slot.last_error or '').rstrip('.')}.",
        retry_after=retry_after,
    )

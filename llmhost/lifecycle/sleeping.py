"""Putting a drained model to sleep and waking it for its requests (warm standby).

The rules that decide a sleep are llmhost.lifecycle.standby; the slow work is
llmhost.lifecycle.operations (`sleep`, `wake`). A failed sleep or wake counts toward the
route's failure limit and shuts the engine down: an engine in an unknown state never serves.
"""

from __future__ import annotations

import logging
from functools import partial

from llmhost.backends.base import Sleeper
from llmhost.lifecycle import operations
from llmhost.lifecycle.context import Context
from llmhost.lifecycle.operations import Failed, Slept, WakeFailed, Woke
from llmhost.lifecycle.slot import Eviction, Slot
from llmhost.lifecycle.standby import standby_failed
from llmhost.lifecycle.state import ModelState
from llmhost.lifecycle.unloading import unload
from llmhost.units import GIB

log = logging.getLogger("llmhost.lifecycle")


def sleep(ctx: Context, slot: Slot, ram_bytes: int) -> None:
    """Put a drained model to sleep instead of unloading it (standby on, RAM allowing)."""
    backend = slot.backend
    assert isinstance(backend, Sleeper)
    reason = slot.eviction.reason if slot.eviction is not None else "requested"
    level = slot.route.sleep_level
    slot.to(ModelState.SLEEPING)
    log.info("putting %s to sleep (%s, level %d)", slot.route.primary_id, reason, level)
    expected, settle = slot.measured_bytes, ctx.host.vram_settle_seconds
    bound = operations.SLEEP_TIMEOUT_SECONDS
    ctx.runner.begin(
        slot,
        "sleep",
        lambda abort: operations.sleep(
            backend,
            level,
            abort=abort,
            monitor=ctx.gpu,
            expected_bytes=expected,
            settle_seconds=settle,
            clock=ctx.clock,
        ),
        partial(_slept, ctx, slot, reason, ram_bytes),
        bound=bound,
        overdue=f"took longer than {bound:g} s",
    )


def _slept(ctx: Context, slot: Slot, reason: str, ram_bytes: int, outcome: Slept | Failed) -> None:
    """The sleep's outcome: asleep, holding its RAM; or shut down when it failed."""
    if isinstance(outcome, Failed):
        standby_failed(slot, outcome.reason)
        _shut_down(ctx, slot, f"{reason}; its sleep failed")  # an engine in an unknown state
        return
    record = slot.standby
    slot.to(ModelState.ASLEEP)
    slot.eviction = None
    record.sleeps += 1
    record.asleep_ram_bytes = outcome.ram_bytes if outcome.ram_bytes is not None else ram_bytes
    freed = outcome.freed_bytes
    if slot.measured_bytes is not None and freed is not None:
        record.asleep_gpu_bytes = max(0, slot.measured_bytes - freed)
    log.info(
        "asleep: %s in %.1f s (level %d%s, %.2f GiB of host RAM held)",
        slot.route.primary_id,
        outcome.elapsed,
        slot.route.sleep_level,
        f", {freed / GIB:.2f} GiB GPU memory back" if freed is not None else "",
        record.asleep_ram_bytes / GIB,
    )


def wake(ctx: Context, slot: Slot) -> None:
    """Wake an asleep model for its waiting requests; none is served before its probe
    matched. A failed wake shuts the engine down and the model cold-loads."""
    backend, probe = slot.backend, slot.standby.probe
    assert isinstance(backend, Sleeper) and probe is not None
    slot.to(ModelState.WAKING)
    slot.load_started = ctx.clock()
    level = slot.route.sleep_level
    log.info("waking %s (level %d)", slot.route.primary_id, level)
    bound = operations.WAKE_TIMEOUT_SECONDS
    ctx.runner.begin(
        slot,
        "wake",
        lambda abort: operations.wake(backend, level, probe, abort=abort, clock=ctx.clock),
        partial(_woke, ctx, slot),
        bound=bound,
        overdue=f"took longer than {bound:g} s",
    )


def _woke(ctx: Context, slot: Slot, outcome: Woke | WakeFailed) -> None:
    """The wake's outcome: ready (its probe matched); or shut down, and a cold load follows
    for its waiting requests, which stay queued."""
    record = slot.standby
    if isinstance(outcome, WakeFailed):
        record.wake_failures += 1
        record.last_wake_error = outcome.reason
        standby_failed(slot, outcome.reason)
        _shut_down(ctx, slot, "its wake failed; a cold load follows")
        return
    slot.to(ModelState.READY)
    slot.ready_at = slot.last_used = ctx.clock()
    record.wakes += 1
    record.wake_seconds.add(outcome.elapsed)
    record.asleep_ram_bytes = record.asleep_gpu_bytes = None
    slot.swap_pending = False
    log.info("ready: %s in %.2f s (woken, probe matched)", slot.route.primary_id, outcome.elapsed)


def _shut_down(ctx: Context, slot: Slot, reason: str) -> None:
    """Unload a model whose sleep or wake failed, with that as its eviction's reason."""
    deadline = slot.eviction.drain_deadline if slot.eviction is not None else None
    slot.eviction = Eviction(reason, deadline)
    unload(ctx, slot)

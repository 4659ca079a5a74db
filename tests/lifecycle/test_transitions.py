"""The pass and the transitions, driven directly: no run loop, no manager.

Each test calls `Scheduler._schedule` (one pass) itself, lets the GPU operation's task
finish, and calls it again: every state change is visible at the pass that makes it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmhost.errors import ModelUnavailable
from llmhost.gpu.monitor import NullMonitor
from llmhost.lifecycle.operations import Loaded
from llmhost.lifecycle.scheduler import Scheduler, StandbyPlatform
from llmhost.lifecycle.slot import Slot, Ticket
from llmhost.lifecycle.state import ModelState
from tests.fakes import FakeBackend, Recorder, catalog
from tests.lifecycle.clock import ManualClock
from tests.lifecycle.support import GatedRecorder, within

S = ModelState


def _scheduler(rec: Recorder, routes: tuple[str, ...] = ("a",), **host: Any) -> tuple[Scheduler, ManualClock]:
    cat = catalog("exclusive", routes, **host)
    clock = ManualClock()
    slots = {name: Slot(route) for name, route in cat.routes.items()}
    scheduler = Scheduler(
        cat.host,
        slots,
        rec.factory,
        NullMonitor("test"),
        clock=clock,
        preflight=None,
        route_changed=lambda: None,
    )
    scheduler.standby = StandbyPlatform(known=True)
    return scheduler, clock


def _state(slot: Slot) -> ModelState:
    return slot.state  # read afresh: each pass may have changed it


def _ticket(slot: Slot, clock: ManualClock) -> Ticket:
    ticket = Ticket(clock(), asyncio.get_running_loop().create_future())
    slot.waiting.append(ticket)
    return ticket


async def _op_done(scheduler: Scheduler) -> None:
    """Let the GPU operation in progress finish (the pass after it applies its outcome)."""
    op = scheduler.op
    assert op is not None
    await within(asyncio.wait({op.task}))


async def test_a_pass_starts_a_load_and_the_next_applies_it() -> None:
    rec = Recorder()
    scheduler, clock = _scheduler(rec)
    slot = scheduler.slots["a"]
    ticket = _ticket(slot, clock)
    assert scheduler._schedule() is not None  # the start timeout is the next timer
    assert _state(slot) is S.LOADING and scheduler.op is not None and scheduler.op.kind == "load"
    await _op_done(scheduler)
    assert _state(slot) is S.LOADING  # the outcome waits for the pass
    scheduler._schedule()
    assert _state(slot) is S.READY and scheduler.op is None
    lease = ticket.granted.result()  # the same pass granted the waiting request
    assert lease.backend is slot.backend and slot.active == {lease}


async def test_the_start_timeout_is_a_deadline_of_the_pass() -> None:
    rec = GatedRecorder()
    rec.gate("load a")  # never opened: the load hangs until it is stopped
    scheduler, clock = _scheduler(rec, start_timeout_seconds=300)
    slot = scheduler.slots["a"]
    ticket = _ticket(slot, clock)
    assert scheduler._schedule() == clock() + 300
    await within(rec.reached("load a").wait())  # the engine's start is under way
    clock.advance(299)
    scheduler._schedule()
    assert _state(slot) is S.LOADING and not ticket.granted.done()
    clock.advance(1)
    scheduler._schedule()
    # Abandoned at once: unloading while its engine is taken back, the waiter answered.
    assert _state(slot) is S.UNLOADING and slot.abandoned == "loading took longer than 300 s"
    with pytest.raises(ModelUnavailable, match="did not become ready"):
        ticket.granted.result()
    await _op_done(scheduler)  # the load returns Abandoned
    scheduler._schedule()
    assert scheduler.op is not None and scheduler.op.kind == "reclaim"
    await _op_done(scheduler)
    scheduler._schedule()
    assert _state(slot) is S.FAILED and slot.failed_loads == 1
    assert rec.events == ["stop a"] and rec.live == set()  # stopped at its gate


async def test_a_load_abandoned_by_a_stop_ends_stopped_not_failed() -> None:
    rec = GatedRecorder()
    rec.gate("load a")
    scheduler, clock = _scheduler(rec)
    slot = scheduler.slots["a"]
    _ticket(slot, clock)
    scheduler._schedule()
    await within(rec.reached("load a").wait())
    scheduler.closing = True
    scheduler._schedule()
    assert _state(slot) is S.UNLOADING and not slot.waiting
    while scheduler.op is not None:
        await _op_done(scheduler)
        scheduler._schedule()
    assert _state(slot) is S.STOPPED and slot.failed_loads == 0
    assert rec.events == ["stop a"] and rec.live == set()
    assert "shutting down" in str(slot.last_error)
    assert scheduler.stopped.is_set()


async def test_an_outcome_for_a_slot_that_moved_on_is_reclaimed() -> None:
    rec = Recorder()
    scheduler, clock = _scheduler(rec)
    slot = scheduler.slots["a"]
    _ticket(slot, clock)
    scheduler._schedule()
    op = scheduler.op
    assert op is not None
    slot.epoch += 1  # what containing an error in its handling does
    await _op_done(scheduler)
    scheduler._schedule()
    assert isinstance(op.task.result(), Loaded)
    assert slot.backend is None and slot.state is S.LOADING  # not applied
    # ... but not dropped: the engine it started is shut down as the next operation.
    assert scheduler.op is not None and scheduler.op.kind == "orphan"
    await _op_done(scheduler)
    scheduler._schedule()
    assert rec.events == ["load a", "stop a"] and rec.live == set()


async def test_a_wake_past_its_bound_fails_and_the_engine_is_shut_down() -> None:
    rec = GatedRecorder()
    rec.gate("wake a")
    scheduler, clock = _scheduler(rec, routes=("a",))
    slot = scheduler.slots["a"]
    backend = FakeBackend(slot.route, rec)
    slot.state, slot.backend = S.ASLEEP, backend
    slot.probe = await backend.probe()
    _ticket(slot, clock)
    deadline = scheduler._schedule()
    assert _state(slot) is S.WAKING and deadline == clock() + 60
    clock.advance(60)
    scheduler._schedule()  # the bound passed: the wake's abort resolves
    await _op_done(scheduler)
    scheduler._schedule()
    assert slot.wake_failures == 1 and "took longer than 60 s" in str(slot.last_wake_error)
    assert _state(slot) is S.UNLOADING  # the unwoken engine never serves


async def test_the_pass_answers_what_must_not_wait() -> None:
    rec = Recorder()
    scheduler, clock = _scheduler(rec, routes=("a", "b"), retry_backoff_seconds=10, idle_seconds=60)
    failed, idle = scheduler.slots["a"], scheduler.slots["b"]
    failed.state, failed.failed_at, failed.last_error = S.FAILED, clock(), "weights missing"
    ticket = _ticket(failed, clock)
    idle.state, idle.backend, idle.last_used = S.READY, FakeBackend(idle.route, rec), clock()
    # Within the backoff the failed model's request gets its 503 at once; the retry and
    # the idle unload are the next timers.
    assert scheduler._schedule() == clock() + 10
    with pytest.raises(ModelUnavailable, match="weights missing"):
        ticket.granted.result()
    clock.advance(60)
    scheduler._schedule()
    assert idle.evicting == "idle for 60 s" and scheduler.op is not None and scheduler.op.kind == "unload"

"""Loading (llmhost.lifecycle.loading), driven directly: no run loop, no manager.

Each test runs a pass (`Scheduler._schedule`) itself, lets the GPU operation's task
finish, and runs the next: every state change is visible at the pass that makes it.
"""

from __future__ import annotations

import pytest

from llmhost.errors import ModelUnavailable
from llmhost.lifecycle.state import ModelState
from tests.fakes import Recorder
from tests.lifecycle.support import GatedRecorder, bare_scheduler, op_done, queue_ticket, state_of, within

S = ModelState


async def test_a_pass_starts_a_load_and_the_next_applies_it() -> None:
    rec = Recorder()
    scheduler, clock = bare_scheduler(rec)
    slot = scheduler.ctx.slots["a"]
    ticket = queue_ticket(slot, clock)
    assert scheduler._schedule() is not None  # the start timeout is the next timer
    assert state_of(slot) is S.LOADING and scheduler.op is not None and scheduler.op.kind == "load"
    await op_done(scheduler)
    assert state_of(slot) is S.LOADING  # the outcome waits for the pass
    scheduler._schedule()
    assert state_of(slot) is S.READY and scheduler.op is None
    lease = ticket.granted.result()  # the same pass granted the waiting request
    assert lease.backend is slot.backend and slot.active == {lease}


async def test_the_start_timeout_is_a_deadline_of_the_pass() -> None:
    rec = GatedRecorder()
    rec.gate("load a")  # never opened: the load hangs until it is stopped
    scheduler, clock = bare_scheduler(rec, start_timeout_seconds=300)
    slot = scheduler.ctx.slots["a"]
    ticket = queue_ticket(slot, clock)
    assert scheduler._schedule() == clock() + 300
    await within(rec.reached("load a").wait())  # the engine's start is under way
    clock.advance(299)
    scheduler._schedule()
    assert state_of(slot) is S.LOADING and not ticket.granted.done()
    clock.advance(1)
    scheduler._schedule()
    # Abandoned at once: unloading while its engine is taken back, the waiter answered.
    assert state_of(slot) is S.UNLOADING and slot.abandoned == "loading took longer than 300 s"
    with pytest.raises(ModelUnavailable, match="did not become ready"):
        ticket.granted.result()
    await op_done(scheduler)  # the load returns Abandoned
    scheduler._schedule()
    assert scheduler.op is not None and scheduler.op.kind == "reclaim"
    await op_done(scheduler)
    scheduler._schedule()
    assert state_of(slot) is S.FAILED and slot.failed_loads == 1
    assert rec.events == ["stop a"] and rec.live == set()  # stopped at its gate


async def test_a_load_abandoned_by_a_stop_ends_stopped_not_failed() -> None:
    rec = GatedRecorder()
    rec.gate("load a")
    scheduler, clock = bare_scheduler(rec)
    slot = scheduler.ctx.slots["a"]
    queue_ticket(slot, clock)
    scheduler._schedule()
    await within(rec.reached("load a").wait())
    scheduler.closing = True
    scheduler._schedule()
    assert state_of(slot) is S.UNLOADING and not slot.waiting
    while scheduler.op is not None:
        await op_done(scheduler)
        scheduler._schedule()
    assert state_of(slot) is S.STOPPED and slot.failed_loads == 0
    assert rec.events == ["stop a"] and rec.live == set()
    assert "shutting down" in str(slot.last_error)
    assert scheduler.stopped.is_set()

"""Unloading (llmhost.lifecycle.unloading), driven directly: no run loop, no manager.

Each test loads a model with the passes, calls `unload` as the pass would, and runs the
passes after it: the engine stops, then its memory is waited for, each a GPU operation of
its own; a request still running is cut off with the reason.
"""

from __future__ import annotations

from llmhost.lifecycle.scheduler import Scheduler
from llmhost.lifecycle.slot import Lease, Slot
from llmhost.lifecycle.state import ModelState
from llmhost.lifecycle.unloading import unload
from tests.fakes import FakeBackend, Recorder
from tests.lifecycle.support import bare_scheduler, op_done, queue_ticket, state_of

S = ModelState


async def _ready(rec: Recorder) -> tuple[Scheduler, Slot, Lease]:
    """A scheduler with model `a` loaded and one request running on it."""
    scheduler, clock = bare_scheduler(rec, drain_timeout_seconds=60)
    slot = scheduler.ctx.slots["a"]
    ticket = queue_ticket(slot, clock)
    scheduler._schedule()
    await op_done(scheduler)
    scheduler._schedule()
    assert state_of(slot) is S.READY
    return scheduler, slot, ticket.granted.result()


async def test_the_engine_stops_then_its_memory_is_waited_for() -> None:
    rec = Recorder()
    scheduler, slot, lease = await _ready(rec)
    unload(scheduler.ctx, slot)
    assert state_of(slot) is S.UNLOADING and scheduler.op is not None and scheduler.op.kind == "unload"
    # Past the drain: the running request is cut off, and its lease says why.
    assert lease.revoked is not None and "was unloaded (requested)" in lease.revoked
    assert "drain bound 60 s" in lease.revoked and slot.active == set()
    await op_done(scheduler)
    scheduler._schedule()  # the engine is stopped: the model is, and its memory is awaited
    assert state_of(slot) is S.STOPPED and slot.backend is None and slot.evictions == 1
    assert scheduler.op is not None and scheduler.op.kind == "memory"
    await op_done(scheduler)
    scheduler._schedule()
    assert scheduler.op is None and rec.events[-1] == "stop a" and rec.live == set()
    assert slot.last_error is None


async def test_a_dead_engine_is_named_to_the_requests_it_cut_off() -> None:
    rec = Recorder()
    scheduler, slot, lease = await _ready(rec)
    backend = slot.backend
    assert isinstance(backend, FakeBackend)
    backend.dead = "the engine core process died"
    unload(scheduler.ctx, slot)
    assert lease.revoked is not None and "stopped working before this request finished" in lease.revoked
    assert "the engine core process died" in lease.revoked
    await op_done(scheduler)
    scheduler._schedule()
    assert state_of(slot) is S.STOPPED and slot.last_error == "the engine core process died"

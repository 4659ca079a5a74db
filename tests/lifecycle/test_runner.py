"""The runner of the one GPU operation (llmhost.lifecycle.runner), driven directly by
the test's own passes: an outcome for a slot that moved on is adopted, never dropped."""

from __future__ import annotations

from llmhost.lifecycle.operations import Loaded
from llmhost.lifecycle.state import ModelState
from tests.fakes import Recorder
from tests.lifecycle.support import bare_scheduler, op_done, queue_ticket

S = ModelState


async def test_an_outcome_for_a_slot_that_moved_on_is_reclaimed() -> None:
    rec = Recorder()
    scheduler, clock = bare_scheduler(rec)
    slot = scheduler.ctx.slots["a"]
    queue_ticket(slot, clock)
    scheduler._schedule()
    op = scheduler.op
    assert op is not None
    slot.epoch += 1  # what containing an error in its handling does
    await op_done(scheduler)
    scheduler._schedule()
    assert isinstance(op.task.result(), Loaded)
    assert slot.backend is None and slot.state is S.LOADING  # not applied
    # ... but not dropped: the engine it started is shut down as the next operation.
    assert scheduler.op is not None and scheduler.op.kind == "orphan"
    await op_done(scheduler)
    scheduler._schedule()
    assert rec.events == ["load a", "stop a"] and rec.live == set()

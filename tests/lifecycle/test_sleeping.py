"""Sleep and wake transitions (llmhost.lifecycle.sleeping), driven directly by the
test's own passes on a hand-moved clock."""

from __future__ import annotations

from llmhost.lifecycle.state import ModelState
from tests.fakes import FakeBackend
from tests.lifecycle.support import GatedRecorder, bare_scheduler, op_done, queue_ticket, state_of

S = ModelState


async def test_a_wake_past_its_bound_fails_and_the_engine_is_shut_down() -> None:
    rec = GatedRecorder()
    rec.gate("wake a")
    scheduler, clock = bare_scheduler(rec, routes=("a",))
    slot = scheduler.ctx.slots["a"]
    backend = FakeBackend(slot.route, rec)
    slot.state, slot.backend = S.ASLEEP, backend
    slot.standby.probe = await backend.probe()
    queue_ticket(slot, clock)
    deadline = scheduler._schedule()
    assert state_of(slot) is S.WAKING and deadline == clock() + 60
    clock.advance(60)
    scheduler._schedule()  # the bound passed: the wake's abort resolves
    await op_done(scheduler)
    scheduler._schedule()
    assert slot.standby.wake_failures == 1 and "took longer than 60 s" in str(slot.standby.last_wake_error)
    assert state_of(slot) is S.UNLOADING  # the unwoken engine never serves

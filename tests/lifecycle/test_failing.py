"""A model put in `failed` (llmhost.lifecycle.failing), driven directly on a scheduler with
no run loop (tests/lifecycle/support.py): a failed load answers its waiting requests with
a 503 that says why and when to retry; a contained error leaves no engine without an owner.
"""

from __future__ import annotations

import pytest

from llmhost.errors import ModelUnavailable
from llmhost.lifecycle.failing import contain, fail
from llmhost.lifecycle.state import ModelState
from tests.fakes import Recorder
from tests.lifecycle.support import bare_scheduler, op_done, queue_ticket, state_of


async def test_a_failed_load_answers_its_waiting_requests_with_the_reason() -> None:
    scheduler, clock = bare_scheduler(Recorder(), retry_backoff_seconds=10)
    slot = scheduler.ctx.slots["a"]
    ticket = queue_ticket(slot, clock)
    clock.advance(5)
    fail(scheduler.ctx, slot, "no such model.")
    assert state_of(slot) is ModelState.FAILED and slot.failed_at == clock()
    assert slot.failed_loads == 1 and slot.last_error == "no such model."
    with pytest.raises(ModelUnavailable, match=r"^a-model failed to load: no such model\.$") as refused:
        ticket.granted.result()
    assert refused.value.retry_after == 10 and not slot.waiting
    assert slot.stats(clock())["refused"]["load_failed"] == 1


async def test_a_contained_error_revokes_the_leases_and_takes_the_engine_back() -> None:
    rec = Recorder()
    scheduler, clock = bare_scheduler(rec)
    slot = scheduler.ctx.slots["a"]
    ticket = queue_ticket(slot, clock)
    scheduler._schedule()
    await op_done(scheduler)
    scheduler._schedule()
    lease = ticket.granted.result()  # a is ready and serving one request
    waiting = queue_ticket(slot, clock)
    contain(scheduler.ctx, slot, "a bug")
    assert state_of(slot) is ModelState.FAILED and slot.backend is None and not slot.active
    assert lease.revoked == "a-model failed: a bug"
    with pytest.raises(ModelUnavailable, match="a-model failed to load: a bug"):
        waiting.granted.result()
    # The engine it held is shut down as the next GPU operation, not dropped.
    scheduler._schedule()
    assert scheduler.op is not None and scheduler.op.kind == "orphan"
    await op_done(scheduler)
    scheduler._schedule()
    assert rec.events == ["load a", "stop a"] and rec.live == set()

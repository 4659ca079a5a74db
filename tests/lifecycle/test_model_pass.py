"""What one pass does for each model (llmhost.lifecycle.model_pass), driven directly:
refusals that must not wait, and evictions marked at their timers."""

from __future__ import annotations

import pytest

from llmhost.errors import ModelUnavailable
from llmhost.lifecycle.state import ModelState
from tests.fakes import FakeBackend, Recorder
from tests.lifecycle.support import bare_scheduler, queue_ticket

S = ModelState


async def test_the_pass_answers_what_must_not_wait() -> None:
    rec = Recorder()
    scheduler, clock = bare_scheduler(rec, routes=("a", "b"), retry_backoff_seconds=10, idle_seconds=60)
    failed, idle = scheduler.ctx.slots["a"], scheduler.ctx.slots["b"]
    failed.state, failed.failed_at, failed.last_error = S.FAILED, clock(), "weights missing"
    ticket = queue_ticket(failed, clock)
    idle.state, idle.backend, idle.last_used = S.READY, FakeBackend(idle.route, rec), clock()
    # Within the backoff the failed model's request gets its 503 at once; the retry and
    # the idle unload are the next timers.
    assert scheduler._schedule() == clock() + 10
    with pytest.raises(ModelUnavailable, match="weights missing"):
        ticket.granted.result()
    clock.advance(60)
    scheduler._schedule()
    assert (
        idle.eviction is not None
        and idle.eviction.reason == "idle for 60 s"
        and scheduler.op is not None
        and scheduler.op.kind == "unload"
    )

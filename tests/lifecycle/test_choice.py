"""The next GPU operation (llmhost.lifecycle.choice), chosen on a scheduler with no run
loop (tests/lifecycle/support.py): the request that has waited longest is served first, and
a busy model is held within max_hold_seconds, and an eviction once decided is
finished before anything else loads.
"""

from __future__ import annotations

from llmhost.lifecycle.choice import choose_operation
from llmhost.lifecycle.state import ModelState
from tests.fakes import Recorder
from tests.lifecycle.support import bare_scheduler, op_done, queue_ticket, state_of


async def test_the_model_whose_request_waited_longest_loads_first() -> None:
    scheduler, clock = bare_scheduler(Recorder(), ("a", "b"))
    ctx = scheduler.ctx
    queue_ticket(ctx.slots["b"], clock)
    clock.advance(1)
    queue_ticket(ctx.slots["a"], clock)  # first in the table, but it came later
    choose_operation(ctx, clock(), [], [], closing=False)
    assert scheduler.op is not None and scheduler.op.kind == "load" and scheduler.op.slot is ctx.slots["b"]
    assert state_of(ctx.slots["a"]) is ModelState.STOPPED
    await op_done(scheduler)


async def test_a_busy_model_is_held_then_its_eviction_is_finished_before_anything_loads() -> None:
    scheduler, clock = bare_scheduler(Recorder(), ("a", "b"), max_hold_seconds=30)
    ctx = scheduler.ctx
    a, b = ctx.slots["a"], ctx.slots["b"]
    ticket = queue_ticket(a, clock)
    scheduler._schedule()
    await op_done(scheduler)
    scheduler._schedule()
    lease = ticket.granted.result()  # a is ready, serving one request
    queue_ticket(b, clock)
    deadlines: list[float] = []
    choose_operation(ctx, clock(), deadlines, [], closing=False)
    # a finishes what it has within max_hold_seconds: nothing is decided yet.
    assert scheduler.op is None and a.eviction is None and deadlines == [clock() + 30]
    clock.advance(30)
    choose_operation(ctx, clock(), [], [], closing=False)
    assert a.eviction is not None and scheduler.op is None  # decided; a drains
    a.active.discard(lease)  # its request ends
    choose_operation(ctx, clock(), [], [], closing=False)
    assert scheduler.op is not None and scheduler.op.kind == "unload" and scheduler.op.slot is a
    assert state_of(b) is ModelState.STOPPED  # b loads once a's memory is back
    await op_done(scheduler)

"""What feeds the scheduler from the background (llmhost.lifecycle.inputs), on a scheduler
with no run loop (tests/lifecycle/support.py): an estimate is advice, never fatal; the
platform's answer on sleep mode is asked once, and an error in asking is an answer too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from llmhost.config import RouteConfig
from llmhost.lifecycle.inputs import BackgroundInputs
from llmhost.lifecycle.slot import Lease
from tests.fakes import Recorder, catalog
from tests.lifecycle.support import bare_scheduler, within


@asynccontextmanager
async def no_lease(name: str) -> AsyncIterator[Lease]:
    raise AssertionError(f"no prewarm was asked for, yet {name} was leased")
    yield  # an async generator, for asynccontextmanager


async def test_an_estimate_that_raises_leaves_the_need_unknown_and_the_rest_estimated() -> None:
    scheduler, _ = bare_scheduler(Recorder(), ("a", "b"), every_route={"resident": True})

    def estimator(route: RouteConfig) -> int | None:
        if route.name == "a":
            raise OSError("config.json unreadable")
        return 7 * 2**30

    inputs = BackgroundInputs(
        scheduler, no_lease, estimator=estimator, standby_query=lambda: None, standby_after=None
    )
    inputs.estimate_needs()
    a, b = scheduler.ctx.slots["a"], scheduler.ctx.slots["b"]
    assert a.estimate_pending and b.estimate_pending  # the pass waits for them
    await within(asyncio.gather(*inputs.tasks))
    assert a.estimated_bytes is None and b.estimated_bytes == 7 * 2**30
    assert not a.estimate_pending and not b.estimate_pending
    inputs.estimate_needs()  # b is known; a is asked again
    assert a.estimate_pending and not b.estimate_pending
    await within(asyncio.gather(*inputs.tasks))


async def test_the_platform_is_asked_once_and_a_failed_question_is_an_answer() -> None:
    scheduler, _ = bare_scheduler(Recorder(), ("a",))
    asked: list[None] = []

    def query() -> str | None:
        asked.append(None)
        raise RuntimeError("no driver")

    inputs = BackgroundInputs(scheduler, no_lease, estimator=None, standby_query=query, standby_after=None)
    inputs.ask_platform(catalog("exclusive", ("a",)))  # no route asks for standby: nothing asked
    assert not inputs.tasks
    standby = catalog("exclusive", ("a",), every_route={"standby": "sleep", "sleep_level": 1})
    inputs.ask_platform(standby)
    inputs.ask_platform(standby)
    await within(asyncio.gather(*inputs.tasks))
    platform = scheduler.ctx.standby
    assert len(asked) == 1 and platform.known and not platform.available
    assert platform.problem == "could not tell whether this platform has a sleep mode: no driver"

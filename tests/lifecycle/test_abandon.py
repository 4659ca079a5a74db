"""An abandoned load is honoured at every await of its operation, and what it started is
taken back: no engine keeps its memory without an owner, and a retry never starts a
second one beside it."""

from __future__ import annotations

import asyncio

import pytest

from llmhost.errors import ModelUnavailable, ShuttingDown
from llmhost.lifecycle.state import ModelState
from tests.fakes import FakeGpu
from tests.lifecycle.support import GatedRecorder, start_manager, use, wait_state, wait_until, within

STANDBY = {"standby": "sleep", "sleep_level": 1}


async def test_the_start_timeout_abandons_a_load_stuck_in_its_standby_probe() -> None:
    rec = GatedRecorder(gpu=FakeGpu())
    probe = rec.gate("probe a")  # the engine started; the probe after it hangs
    manager, clock = start_manager(
        rec,
        every_route=STANDBY,
        standby_query=lambda: None,
        start_timeout_seconds=300,
        retry_backoff_seconds=10,
    )
    await wait_until(manager, lambda: manager.scheduler.ctx.standby.known)
    request = asyncio.create_task(use(manager, "a"))
    await within(rec.reached("probe a").wait())
    assert rec.live == {"a"}
    clock.advance(300)
    with pytest.raises(ModelUnavailable, match="loading took longer than 300 s"):
        await within(request)
    await wait_state(manager, "a", ModelState.FAILED)
    assert rec.events == ["load a", "stop a"] and rec.live == set()  # taken back, not leaked
    probe.set()
    clock.advance(10)  # the retry after the backoff starts one engine, not a second one
    await within(use(manager, "a"))
    assert rec.live == {"a"} and rec.loads == {"a": 2}
    await manager.close()


async def test_a_stop_during_the_probe_takes_the_engine_back() -> None:
    rec = GatedRecorder(gpu=FakeGpu())
    rec.gate("probe a")
    manager, _ = start_manager(rec, every_route=STANDBY, standby_query=lambda: None)
    await wait_until(manager, lambda: manager.scheduler.ctx.standby.known)
    request = asyncio.create_task(use(manager, "a"))
    await within(rec.reached("probe a").wait())
    await within(manager.close())  # no bound of the load passes: the stop itself abandons it
    with pytest.raises(ShuttingDown):
        await within(request)
    assert rec.events == ["load a", "stop a"] and rec.live == set()
    assert manager.route_state("a") is ModelState.STOPPED


async def test_a_sleep_past_its_bound_shuts_the_engine_down() -> None:
    rec = GatedRecorder(gpu=FakeGpu())
    rec.gate("sleep a")
    manager, clock = start_manager(rec, every_route=STANDBY, standby_query=lambda: None)
    await wait_until(manager, lambda: manager.scheduler.ctx.standby.known)
    await within(use(manager, "a"))
    b_request = asyncio.create_task(use(manager, "b"))
    await within(rec.reached("sleep a").wait())
    clock.advance(60)
    await within(b_request)
    assert rec.events == ["load a", "stop a", "load b"]
    stats = {s["route"]: s for s in manager.snapshot()}["a"]
    assert stats["state"] == "stopped" and stats["sleeps"] == 0
    await manager.close()

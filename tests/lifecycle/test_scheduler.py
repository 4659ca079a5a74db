"""Scheduler.grant, the one place a lease is made, and acquire's shortcut through it."""

from __future__ import annotations

import asyncio

import pytest

from llmhost.gpu.monitor import NullMonitor
from llmhost.lifecycle.scheduler import Scheduler
from llmhost.lifecycle.slot import Eviction, Slot
from llmhost.lifecycle.state import ModelState
from tests.fakes import FakeBackend, Recorder, catalog
from tests.lifecycle.clock import ManualClock
from tests.lifecycle.support import settled, start_manager, within


def _ready_slot(rec: Recorder) -> tuple[Scheduler, Slot]:
    cat = catalog("exclusive", ("a",), max_in_flight=2)
    slot = Slot(cat.routes["a"])
    slot.to(ModelState.LOADING)
    slot.backend = FakeBackend(slot.route, rec)
    slot.to(ModelState.READY)
    scheduler = Scheduler(
        cat.host,
        {"a": slot},
        rec.factory,
        NullMonitor("test"),
        clock=ManualClock(),
        preflight=None,
        route_changed=lambda: None,
    )
    return scheduler, slot


async def test_grant_leases_a_ready_model_up_to_its_limit() -> None:
    scheduler, slot = _ready_slot(Recorder())
    first, second = scheduler.grant(slot), scheduler.grant(slot)
    assert first is not None and second is not None and first is not second
    assert slot.active == {first, second} and first.backend is slot.backend
    assert scheduler.grant(slot) is None  # max_in_flight = 2


@pytest.mark.parametrize("why", ["evicting", "reloaded", "retired", "not ready"])
async def test_grant_refuses_a_model_on_its_way_out(why: str) -> None:
    scheduler, slot = _ready_slot(Recorder())
    if why == "evicting":
        slot.eviction = Eviction("idle for 300 s", None)
    elif why == "reloaded":
        slot.next_route = slot.route
    elif why == "retired":
        slot.retired = True
    else:
        slot.to(ModelState.UNLOADING)
    assert scheduler.grant(slot) is None
    assert slot.active == set()


async def test_acquire_on_a_warm_model_skips_the_queue_until_its_limit() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec, routes=("a",), max_in_flight=2)
    async with manager.lease("a"):
        pass
    slot = manager.slots["a"]
    first = await manager.acquire("a")
    second = await manager.acquire("a")
    assert slot.active == {first, second} and not slot.waiting
    third = asyncio.create_task(manager.acquire("a"))
    await settled(manager)
    assert not third.done() and len(slot.waiting) == 1  # at its limit: queued
    manager.release(first)
    lease = await within(third)
    assert slot.active == {second, lease} and not slot.waiting
    manager.release(second)
    manager.release(lease)
    assert rec.loads == {"a": 1}
    await manager.close()

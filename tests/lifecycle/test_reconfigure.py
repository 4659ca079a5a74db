"""A stop or a reload never puts a model to sleep (item: only making room sleeps), and a
reload that changes a route bounds the old engine's drain and abandons a load of the old
settings still in progress."""

from __future__ import annotations

import asyncio

import pytest

from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.slot import Lease
from llmhost.lifecycle.state import ModelState
from tests.fakes import FakeGpu, Recorder, catalog
from tests.lifecycle.support import GatedRecorder, start_manager, use, wait_state, wait_until, within

STANDBY = {"standby": "sleep", "sleep_level": 1}


async def _evicting_to_sleep(rec: Recorder) -> tuple[ModelManager, Lease, asyncio.Task[None]]:
    """a is busy and marked for eviction to make room for b, which may put it to sleep."""
    manager, _ = start_manager(
        rec, every_route=STANDBY, standby_query=lambda: None, max_hold_seconds=0, drain_timeout_seconds=600
    )
    await wait_until(manager, lambda: manager.scheduler.ctx.standby.known)
    lease = await within(manager.acquire("a"))
    b_request = asyncio.create_task(use(manager, "b"))
    await wait_until(manager, lambda: manager.slots["a"].eviction is not None)
    eviction = manager.slots["a"].eviction
    assert eviction is not None and eviction.to_standby  # making room: it would sleep
    return manager, lease, b_request


async def test_a_stop_never_puts_a_model_to_sleep() -> None:
    rec = Recorder(gpu=FakeGpu())
    manager, lease, b_request = await _evicting_to_sleep(rec)
    manager.begin_close()
    with pytest.raises(Exception, match="shutting down"):
        await within(b_request)
    manager.release(lease)  # drained now: the stop shuts it down
    await within(manager.close())
    assert "sleep a" not in rec.events and rec.events[-1] == "stop a"
    assert rec.live == set() and rec.asleep == {}


async def test_a_reload_never_puts_a_model_to_sleep() -> None:
    rec = Recorder(gpu=FakeGpu())
    manager, lease, b_request = await _evicting_to_sleep(rec)
    changed = catalog("exclusive", ("a", "b"), every_route={**STANDBY, "idle_seconds": 99})
    manager.reconfigure(changed)
    manager.release(lease)
    await within(b_request)
    assert "sleep a" not in rec.events
    assert manager.route_state("a") is ModelState.STOPPED  # its new settings load at its next use
    await manager.close()


async def test_a_changed_route_drains_its_old_engine_within_the_bound() -> None:
    rec = Recorder()
    manager, clock = start_manager(rec, drain_timeout_seconds=60)
    in_flight = await within(manager.acquire("a"))  # a request that never ends
    manager.reconfigure(catalog("exclusive", ("a", "b"), every_route={"idle_seconds": 99}))
    await wait_until(manager, lambda: manager.slots["a"].eviction is not None)
    clock.advance(60)
    await wait_state(manager, "a", ModelState.STOPPED)
    assert in_flight.revoked is not None and "drain bound 60 s" in in_flight.revoked
    await within(use(manager, "a"))  # the new settings
    assert manager.slots["a"].route.idle_seconds == 99 and rec.loads["a"] == 2
    manager.release(in_flight)
    await manager.close()


async def test_a_reload_abandons_a_load_of_the_old_settings() -> None:
    rec = GatedRecorder()
    rec.gate("load a")  # the old settings' load hangs until stopped
    manager, _ = start_manager(rec)
    request = asyncio.create_task(use(manager, "a"))
    await within(rec.reached("load a").wait())
    new = catalog("exclusive", ("a", "b"))
    new = new.model_copy(
        update={"routes": {**new.routes, "a": new.routes["a"].model_copy(update={"model": "org/a-v2"})}}
    )
    del rec.gates["load a"]  # the new settings' load goes through
    manager.reconfigure(new)
    await within(request)  # served by the new settings, not failed
    assert rec.models_loaded == ["org/a-v2"] and rec.events == ["stop a", "load a"]
    await manager.close()

"""A request's wait has a bound of its own (max_wait_seconds), apart from the load's
(start_timeout_seconds): it is never cut while its model is loading or waking within the
load's bound, and its default covers the worst swap the settings allow."""

from __future__ import annotations

import asyncio

import pytest

from llmhost.backends.base import STOP_BOUND_SECONDS
from llmhost.errors import ModelUnavailable
from llmhost.lifecycle.bounds import request_wait_bound
from llmhost.lifecycle.operations import SLEEP_TIMEOUT_SECONDS, WAKE_TIMEOUT_SECONDS
from llmhost.lifecycle.state import ModelState
from tests.fakes import Recorder, catalog
from tests.lifecycle.support import GatedRecorder, start_manager, use, wait_state, wait_until, within


async def test_a_request_is_not_cut_while_its_model_loads_within_the_load_bound() -> None:
    rec = GatedRecorder()
    gate = rec.gate("load a")
    manager, clock = start_manager(rec, max_wait_seconds=100, start_timeout_seconds=300)
    request = asyncio.create_task(use(manager, "a"))
    await within(rec.reached("load a").wait())
    passes = manager.scheduler.passes
    clock.advance(250)  # past the request's bound, within the load's
    await wait_until(manager, lambda: manager.scheduler.passes > passes)
    assert not request.done() and manager.route_state("a") is ModelState.LOADING
    gate.set()
    await within(request)  # served: the load it waited for was not for nobody
    await manager.close()


async def test_a_request_waiting_for_a_busy_resident_is_cut_at_its_own_bound() -> None:
    rec = Recorder()
    manager, clock = start_manager(rec, max_wait_seconds=100, max_hold_seconds=30, drain_timeout_seconds=600)
    lease = await within(manager.acquire("a"))  # a stays busy: b cannot load
    request = asyncio.create_task(use(manager, "b"))
    await wait_until(manager, lambda: bool(manager.slots["b"].waiting))
    clock.advance(99)
    await within(manager.scheduler.settled())
    assert not request.done()  # a is held, then drains: b waits within its bound
    clock.advance(1)
    with pytest.raises(
        ModelUnavailable, match=r"b-model did not become ready within 100 s \(it is stopped\)"
    ):
        await within(request)
    stats = {s["route"]: s for s in manager.snapshot()}["b"]
    assert stats["refused"]["wait_timeout"] == 1 and stats["waiting"] == 0
    manager.release(lease)
    await wait_state(manager, "a", ModelState.STOPPED)  # the eviction made for b goes through
    await manager.close()


def test_the_default_wait_covers_the_worst_swap_the_settings_allow() -> None:
    stop = STOP_BOUND_SECONDS
    plain = catalog("exclusive", ("a", "b", "c"))
    host = plain.host
    # Hold, drain, each other model shut down and its memory back, then the cold load.
    assert request_wait_bound(plain) == (
        host.max_hold_seconds
        + host.drain_timeout_seconds
        + 2 * (stop + host.vram_settle_seconds)
        + host.start_timeout_seconds
    )
    assert request_wait_bound(catalog("exclusive", ("a", "b", "c"))) == 30 + 60 + 2 * (45 + 20) + 300
    # Standby: a victim may first fail to sleep, the target may first fail to wake.
    standby = catalog("exclusive", ("a", "b"), every_route={"standby": "sleep"})
    assert request_wait_bound(standby) == (
        30 + 60 + (SLEEP_TIMEOUT_SECONDS + stop + 20) + (WAKE_TIMEOUT_SECONDS + stop + 20) + 300
    )
    # An explicit setting wins.
    assert request_wait_bound(catalog("exclusive", ("a",), max_wait_seconds=42)) == 42

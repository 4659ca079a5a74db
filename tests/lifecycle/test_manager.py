"""The lifecycle manager driven through a fake backend: every decision, deterministically.

Time moves only when a test moves the clock (tests/lifecycle/clock.py); a test waits for
the pass in which something happens, never for wall-clock time.
"""

from __future__ import annotations

import asyncio

import pytest

from llmhost.errors import ModelUnavailable, Overloaded, ShuttingDown
from llmhost.lifecycle.state import ModelState
from llmhost.units import GIB
from tests.fakes import FakeGpu, Recorder, catalog
from tests.lifecycle.support import (
    GatedRecorder,
    settled,
    start_manager,
    use,
    wait_state,
    wait_until,
    within,
)


def _stats(manager: object) -> dict[str, dict[str, object]]:
    return {s["route"]: s for s in manager.snapshot()}  # type: ignore[attr-defined]


async def test_concurrent_requests_share_one_cold_load() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec)
    await within(asyncio.gather(*(use(manager, "a") for _ in range(10))))
    assert rec.loads == {"a": 1}
    assert manager.route_state("a") is ModelState.READY
    stats = _stats(manager)["a"]
    assert stats["loads"] == 1 and stats["cold_start_seconds"]["last"] is not None  # type: ignore[index]
    await manager.close()
    assert rec.live == set()


async def test_exclusive_swaps_and_lease_blocks_unload() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec)
    lease = await within(manager.acquire("a"))
    b_request = asyncio.create_task(use(manager, "b"))
    await wait_until(manager, lambda: bool(manager.slots["b"].waiting))
    await settled(manager)
    # b waits: a is in use within its hold, and a model with a lease is never unloaded.
    assert not b_request.done()
    assert rec.live == {"a"} and manager.slots["a"].eviction is None
    manager.release(lease)
    await within(b_request)
    assert rec.events == ["load a", "stop a", "load b"]
    assert rec.live == {"b"}
    stats = _stats(manager)
    assert stats["b"]["swaps"] == 1 and stats["a"]["evictions"] == 1
    await manager.close()


async def test_drain_timeout_revokes_lease_and_unloads() -> None:
    rec = Recorder()
    manager, clock = start_manager(rec, drain_timeout_seconds=5, max_hold_seconds=0)
    stuck = await within(manager.acquire("a"))
    b_request = asyncio.create_task(use(manager, "b"))
    await wait_until(manager, lambda: manager.slots["a"].eviction is not None)
    await settled(manager)
    assert stuck.revoked is None and not b_request.done()  # draining, within its bound
    clock.advance(5)
    await within(b_request)
    assert stuck.revoked is not None and "drain" in stuck.revoked
    assert rec.live == {"b"}
    manager.release(stuck)  # releasing a revoked lease later is harmless
    await manager.close()


async def test_interleaved_burst_loads_at_most_three_times() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec)
    routes = ["a", "b"] * 20
    await within(asyncio.gather(*(use(manager, r) for r in routes)))
    assert sum(rec.loads.values()) <= 3
    await manager.close()


async def test_waiting_model_is_not_starved_by_busy_resident() -> None:
    rec = Recorder()
    manager, clock = start_manager(rec, max_hold_seconds=30)
    stop = asyncio.Event()

    async def keep_a_busy() -> None:
        while not stop.is_set():
            await use(manager, "a")

    await use(manager, "a")
    workers = [asyncio.create_task(keep_a_busy()) for _ in range(3)]
    b_request = asyncio.create_task(use(manager, "b"))
    await wait_until(manager, lambda: bool(manager.slots["b"].waiting))
    await settled(manager)
    # Within the hold, a keeps taking new requests and b waits.
    await within(use(manager, "a"))
    assert not b_request.done() and manager.slots["a"].eviction is None
    assert rec.events == ["load a"]
    clock.advance(30)  # the hold is over: a drains, unloads, and b loads
    await within(b_request)
    assert rec.events[:3] == ["load a", "stop a", "load b"]
    stop.set()
    await within(asyncio.gather(*workers))
    await manager.close()


async def test_idle_unload_counts_from_last_lease_end() -> None:
    rec = Recorder()
    manager, clock = start_manager(rec, idle_seconds=40)
    async with manager.lease("a"):
        clock.advance(60)  # longer than idle: never unloaded during a lease
        await settled(manager)
        assert manager.route_state("a") is ModelState.READY
    clock.advance(20)
    await settled(manager)
    assert manager.route_state("a") is ModelState.READY  # 20 s since the lease ended
    clock.advance(20)
    await wait_state(manager, "a", ModelState.STOPPED)
    assert rec.live == set()
    await manager.close()


async def test_load_failure_backs_off_then_retries() -> None:
    rec = Recorder()
    rec.fail["a"] = RuntimeError("weights missing")
    manager, clock = start_manager(rec, retry_backoff_seconds=10)
    with pytest.raises(ModelUnavailable, match="weights missing"):
        await within(use(manager, "a"))
    assert manager.route_state("a") is ModelState.FAILED
    with pytest.raises(ModelUnavailable) as fast:
        await within(use(manager, "a"))  # within the backoff: no second load
    assert fast.value.retry_after is not None
    assert rec.events.count("load a") == 1
    await within(use(manager, "b"))  # other routes keep working
    del rec.fail["a"]
    clock.advance(10)
    await within(use(manager, "a"))
    assert rec.events.count("load a") == 2
    stats = _stats(manager)["a"]
    assert stats["state"] == "ready" and stats["last_error"] is None
    await manager.close()


async def test_start_timeout_gives_503_and_frees_the_gpu() -> None:
    rec = GatedRecorder()
    rec.gate("load a")  # never opened: the load hangs until it is stopped
    manager, clock = start_manager(rec, start_timeout_seconds=300)
    request = asyncio.create_task(use(manager, "a"))
    await within(rec.reached("load a").wait())  # the engine's start is under way
    clock.advance(300)
    with pytest.raises(
        ModelUnavailable, match=r"a-model did not become ready: loading took longer than 300 s"
    ):
        await within(request)
    await wait_state(manager, "a", ModelState.FAILED)
    assert rec.events == ["stop a"] and rec.live == set()
    stats = _stats(manager)["a"]
    assert "longer than" in str(stats["last_error"]) and stats["failed_loads"] == 1
    await manager.close()


async def test_fit_keeps_models_that_fit_and_evicts_lru() -> None:
    rec = Recorder(gpu=FakeGpu(total_bytes=16 * GIB))
    rec.memory = {"a": 6 * GIB, "b": 6 * GIB, "c": 6 * GIB}
    # Without memory_gib the need would be vLLM's default 0.9 x 16 GiB: pin it, as a
    # user would for small models.
    manager, clock = start_manager(rec, policy="fit", routes=("a", "b", "c"), every_route={"memory_gib": 6.0})
    await within(use(manager, "a"))
    await within(use(manager, "b"))
    assert rec.live == {"a", "b"}  # both fit
    clock.advance(1)
    await within(use(manager, "a"))  # a is now more recently used than b
    await within(use(manager, "c"))  # needs 6 GiB, 4 free: evicts b (LRU), keeps a
    assert rec.live == {"a", "c"}
    await manager.close()


async def test_fit_refuses_what_cannot_fit() -> None:
    rec = Recorder(gpu=FakeGpu(total_bytes=8 * GIB))
    manager, _ = start_manager(rec, policy="fit", routes=("a",), every_route={"memory_gib": 12.0})
    with pytest.raises(ModelUnavailable, match=r"needs 12\.0 GiB"):
        await within(use(manager, "a"))
    assert rec.events == []
    await manager.close()


async def test_bounded_queue_and_shutdown() -> None:
    rec = GatedRecorder()
    gate = rec.gate("load a")
    manager, _ = start_manager(rec, max_waiting=3)
    waiters = [asyncio.create_task(use(manager, "a")) for _ in range(3)]
    await wait_until(manager, lambda: len(manager.slots["a"].waiting) == 3)
    with pytest.raises(Overloaded):
        await within(use(manager, "a"))
    gate.set()
    await within(asyncio.gather(*waiters))
    await manager.close()
    assert rec.live == set()
    with pytest.raises(ShuttingDown):
        await within(use(manager, "a"))


async def test_cancelled_waiter_leaves_no_lease() -> None:
    rec = GatedRecorder()
    gate = rec.gate("load a")
    manager, _ = start_manager(rec)
    waiter = asyncio.create_task(use(manager, "a"))
    await wait_state(manager, "a", ModelState.LOADING)
    waiter.cancel()
    gate.set()
    await wait_state(manager, "a", ModelState.READY)
    stats = _stats(manager)["a"]
    assert stats["in_flight"] == 0 and stats["waiting"] == 0
    await manager.close()


async def test_dead_engine_is_unloaded_and_reloaded() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec)
    async with manager.lease("a") as lease:
        lease.backend.dead = "engine core process died"  # type: ignore[attr-defined]
    await wait_state(manager, "a", ModelState.STOPPED)
    assert "died" in str(_stats(manager)["a"]["last_error"])
    await within(use(manager, "a"))
    assert rec.loads["a"] == 2
    await manager.close()


async def test_prewarm_loads_in_background() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec)
    manager.prewarm(["b"])
    await wait_state(manager, "b", ModelState.READY)
    assert rec.live == {"b"}
    await manager.close()


async def test_swap_waits_for_freed_vram_before_loading() -> None:
    """Drivers report freed memory late: the next load must not start before it shows."""
    rec = Recorder(gpu=FakeGpu(total_bytes=16 * GIB, release_lag=0.4))
    rec.memory = {"a": 12 * GIB, "b": 12 * GIB}
    manager, _ = start_manager(rec, every_route={"memory_gib": 12.0})
    await within(use(manager, "a"))
    await within(use(manager, "b"))
    assert rec.free_at_load["b"] == 16 * GIB  # a's 12 GiB were back before b loaded
    assert rec.live == {"b"}
    await manager.close()


async def test_load_refused_when_free_vram_is_short() -> None:
    rec = Recorder(gpu=FakeGpu(total_bytes=16 * GIB, used={"someone-else": 10 * GIB}))
    manager, _ = start_manager(rec, routes=("a",), every_route={"memory_gib": 8.0})
    with pytest.raises(ModelUnavailable, match=r"only 6\.0 GiB is free"):
        await within(use(manager, "a"))
    assert rec.events == []
    await manager.close()


async def test_close_abandons_a_load_in_progress() -> None:
    """A stop during a cold load does not sit the load out: waiters get 503, the
    half-started backend is stopped, close() returns without the start timeout passing."""
    rec = GatedRecorder()
    rec.gate("load a")  # never opened: the load hangs until it is stopped
    manager, _ = start_manager(rec, start_timeout_seconds=300)
    waiter = asyncio.create_task(use(manager, "a"))
    await within(rec.reached("load a").wait())  # the engine's start is under way
    await within(manager.close())  # the clock never moves: no bound of the load passes
    with pytest.raises(ShuttingDown):
        await within(waiter)
    assert rec.events == ["stop a"] and rec.live == set()
    assert manager.route_state("a") is ModelState.STOPPED
    assert "shutting down" in str(_stats(manager)["a"]["last_error"])


async def test_removing_a_loading_route_abandons_its_load() -> None:
    rec = GatedRecorder()
    rec.gate("load a")  # never opened: the load hangs until it is stopped
    manager, _ = start_manager(rec, start_timeout_seconds=300)
    waiter = asyncio.create_task(use(manager, "a"))
    await within(rec.reached("load a").wait())  # the engine's start is under way
    manager.reconfigure(catalog("exclusive", ("b",)))
    with pytest.raises(Exception, match="removed"):
        await within(waiter)
    await wait_until(manager, lambda: "a" not in manager.slots)
    assert rec.events == ["stop a"] and rec.live == set()
    await within(use(manager, "b"))  # the GPU is free for the others
    await manager.close()


async def test_the_last_release_still_starts_the_idle_timer() -> None:
    # A release wakes the scheduler only when there is something to do (ModelManager.release).
    rec = Recorder()
    manager, clock = start_manager(rec, idle_seconds=30)
    first = await within(manager.acquire("a"))
    second = await within(manager.acquire("a"))
    manager.release(first)  # the other request still holds it
    clock.advance(50)
    await settled(manager)
    assert rec.events == ["load a"]
    manager.release(second)  # idle now: its timer starts, and it is unloaded
    clock.advance(30)
    await wait_state(manager, "a", ModelState.STOPPED)
    assert rec.events == ["load a", "stop a"]
    await manager.close()

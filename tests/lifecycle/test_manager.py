"""The lifecycle manager driven through a fake backend: every decision, deterministically."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llmhost.errors import ModelUnavailable, Overloaded, ShuttingDown
from llmhost.gpu import GIB, NullMonitor
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.state import ModelState
from tests.fakes import FakeGpu, Recorder, catalog


async def _manager(rec: Recorder, **kwargs: object) -> ModelManager:
    policy = str(kwargs.pop("policy", "exclusive"))
    routes = kwargs.pop("routes", ("a", "b"))
    gpu = rec.gpu if rec.gpu is not None else NullMonitor("test")
    manager = ModelManager(catalog(policy, routes, **kwargs), rec.factory, gpu)  # type: ignore[arg-type]
    manager.start()
    return manager


@pytest.fixture
async def rec() -> AsyncIterator[Recorder]:
    yield Recorder()


async def _use(manager: ModelManager, route: str, seconds: float = 0.01) -> None:
    async with manager.lease(route):
        await asyncio.sleep(seconds)


async def test_concurrent_requests_share_one_cold_load(rec: Recorder) -> None:
    manager = await _manager(rec)
    await asyncio.gather(*(_use(manager, "a") for _ in range(10)))
    assert rec.loads == {"a": 1}
    assert manager.route_state("a") is ModelState.READY
    stats = {s["route"]: s for s in manager.snapshot()}
    assert stats["a"]["loads"] == 1 and stats["a"]["cold_start_seconds"]["last"] is not None
    await manager.close()
    assert rec.live == set()


async def test_exclusive_swaps_and_lease_blocks_unload(rec: Recorder) -> None:
    manager = await _manager(rec)
    lease = await manager.acquire("a")
    b_request = asyncio.create_task(_use(manager, "b"))
    await asyncio.sleep(0.3)
    # b waits: a is in use, and a model with a lease is never unloaded.
    assert not b_request.done()
    assert rec.live == {"a"}
    manager.release(lease)
    await asyncio.wait_for(b_request, 5)
    assert rec.events == ["load a", "stop a", "load b"]
    assert rec.live == {"b"}
    stats = {s["route"]: s for s in manager.snapshot()}
    assert stats["b"]["swaps"] == 1 and stats["a"]["evictions"] == 1
    await manager.close()


async def test_drain_timeout_revokes_lease_and_unloads(rec: Recorder) -> None:
    manager = await _manager(rec, drain_timeout_seconds=0.3, max_hold_seconds=0.0)
    stuck = await manager.acquire("a")
    await asyncio.wait_for(_use(manager, "b"), 5)
    assert stuck.revoked is not None and "drain" in stuck.revoked
    assert rec.live == {"b"}
    manager.release(stuck)  # releasing a revoked lease later is harmless
    await manager.close()


async def test_interleaved_burst_loads_at_most_three_times(rec: Recorder) -> None:
    manager = await _manager(rec)
    routes = ["a", "b"] * 20
    await asyncio.wait_for(asyncio.gather(*(_use(manager, r, 0.02) for r in routes)), 20)
    assert sum(rec.loads.values()) <= 3
    await manager.close()


async def test_waiting_model_is_not_starved_by_busy_resident(rec: Recorder) -> None:
    manager = await _manager(rec, max_hold_seconds=0.5)
    stop = asyncio.Event()

    async def keep_a_busy() -> None:
        while not stop.is_set():
            try:
                await _use(manager, "a", 0.05)
            except ModelUnavailable:
                pass

    workers = [asyncio.create_task(keep_a_busy()) for _ in range(3)]
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(_use(manager, "b"), 5)
    waited = loop.time() - started
    stop.set()
    await asyncio.gather(*workers)
    # hold (0.5 s) + drain of in-flight 0.05 s requests + stop + load: well under 2 s.
    assert waited < 2.0
    assert waited >= 0.3  # a kept serving for (most of) the hold first
    await manager.close()


async def test_idle_unload_counts_from_last_lease_end(rec: Recorder) -> None:
    manager = await _manager(rec, idle_seconds=0.4)
    async with manager.lease("a"):
        await asyncio.sleep(0.6)  # longer than idle: never unloaded during a lease
        assert manager.route_state("a") is ModelState.READY
    await asyncio.sleep(0.2)
    assert manager.route_state("a") is ModelState.READY  # 0.2 s since the lease ended
    await asyncio.sleep(0.5)
    assert manager.route_state("a") is ModelState.STOPPED
    assert rec.live == set()
    await manager.close()


async def test_load_failure_backs_off_then_retries(rec: Recorder) -> None:
    rec.fail["a"] = RuntimeError("weights missing")
    manager = await _manager(rec, retry_backoff_seconds=0.5)
    with pytest.raises(ModelUnavailable, match="weights missing"):
        await _use(manager, "a")
    assert manager.route_state("a") is ModelState.FAILED
    with pytest.raises(ModelUnavailable) as fast:
        await _use(manager, "a")  # within the backoff: no second load
    assert fast.value.retry_after is not None
    assert rec.events.count("load a") == 1
    await _use(manager, "b")  # other routes keep working
    del rec.fail["a"]
    await asyncio.sleep(0.5)
    await _use(manager, "a")
    assert rec.events.count("load a") == 2
    stats = {s["route"]: s for s in manager.snapshot()}
    assert stats["a"]["state"] == "ready" and stats["a"]["last_error"] is None
    await manager.close()


async def test_start_timeout_gives_503_and_frees_the_gpu(rec: Recorder) -> None:
    rec.hang.add("a")
    manager = await _manager(rec, start_timeout_seconds=0.3)
    with pytest.raises(ModelUnavailable, match="a-model"):
        await _use(manager, "a")
    assert manager.route_state("a") is ModelState.FAILED
    stats = {s["route"]: s for s in manager.snapshot()}
    assert "longer than" in stats["a"]["last_error"]
    await manager.close()


async def test_fit_keeps_models_that_fit_and_evicts_lru(rec: Recorder) -> None:
    rec.gpu = FakeGpu(total_bytes=16 * GIB)
    rec.memory = {"a": 6 * GIB, "b": 6 * GIB, "c": 6 * GIB}
    manager = await _manager(rec, policy="fit", routes=("a", "b", "c"))
    # Without memory_gib the need would be vLLM's default 0.9 x 16 GiB: pin it, as a
    # user would for small models.
    for name in ("a", "b", "c"):
        slot = manager.slots[name]
        slot.route = slot.route.model_copy(update={"memory_gib": 6.0})
    await _use(manager, "a")
    await _use(manager, "b")
    assert rec.live == {"a", "b"}  # both fit
    await _use(manager, "a")  # a is now more recently used than b
    await _use(manager, "c")  # needs 6 GiB, 4 free: evicts b (LRU), keeps a
    assert rec.live == {"a", "c"}
    await manager.close()


async def test_fit_refuses_what_cannot_fit(rec: Recorder) -> None:
    rec.gpu = FakeGpu(total_bytes=8 * GIB)
    manager = await _manager(rec, policy="fit", routes=("a",))
    slot = manager.slots["a"]
    slot.route = slot.route.model_copy(update={"memory_gib": 12.0})
    with pytest.raises(ModelUnavailable, match=r"needs 12\.0 GiB"):
        await _use(manager, "a")
    assert rec.events == []
    await manager.close()


async def test_bounded_queue_and_shutdown(rec: Recorder) -> None:
    rec.load_seconds = 0.5
    manager = await _manager(rec, max_waiting=3)
    waiters = [asyncio.create_task(_use(manager, "a")) for _ in range(3)]
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded):
        await _use(manager, "a")
    await asyncio.gather(*waiters)
    await manager.close()
    assert rec.live == set()
    with pytest.raises(ShuttingDown):
        await _use(manager, "a")


async def test_cancelled_waiter_leaves_no_lease(rec: Recorder) -> None:
    rec.load_seconds = 0.3
    manager = await _manager(rec)
    waiter = asyncio.create_task(_use(manager, "a", 10))
    await asyncio.sleep(0.05)
    waiter.cancel()
    await asyncio.sleep(0.4)
    stats = {s["route"]: s for s in manager.snapshot()}
    assert stats["a"]["in_flight"] == 0 and stats["a"]["waiting"] == 0
    await manager.close()


async def test_dead_engine_is_unloaded_and_reloaded(rec: Recorder) -> None:
    manager = await _manager(rec)
    async with manager.lease("a") as lease:
        lease.backend.dead = "engine core process died"  # type: ignore[attr-defined]
    await asyncio.sleep(0.2)
    assert manager.route_state("a") is ModelState.STOPPED
    stats = {s["route"]: s for s in manager.snapshot()}
    assert "died" in stats["a"]["last_error"]
    await _use(manager, "a")
    assert rec.loads["a"] == 2
    await manager.close()


async def test_prewarm_loads_in_background(rec: Recorder) -> None:
    manager = await _manager(rec)
    manager.prewarm(["b"])
    await asyncio.sleep(0.3)
    assert rec.live == {"b"}
    await manager.close()


async def test_swap_waits_for_freed_vram_before_loading(rec: Recorder) -> None:
    """Drivers report freed memory late: the next load must not start before it shows."""
    rec.gpu = FakeGpu(total_bytes=16 * GIB, release_lag=0.4)
    rec.memory = {"a": 12 * GIB, "b": 12 * GIB}
    manager = await _manager(rec)
    for name in ("a", "b"):
        slot = manager.slots[name]
        slot.route = slot.route.model_copy(update={"memory_gib": 12.0})
    await _use(manager, "a")
    await _use(manager, "b")
    assert rec.free_at_load["b"] == 16 * GIB  # a's 12 GiB were back before b loaded
    assert rec.live == {"b"}
    await manager.close()


async def test_load_refused_when_free_vram_is_short(rec: Recorder) -> None:
    rec.gpu = FakeGpu(total_bytes=16 * GIB, used={"someone-else": 10 * GIB})
    manager = await _manager(rec, routes=("a",))
    slot = manager.slots["a"]
    slot.route = slot.route.model_copy(update={"memory_gib": 8.0})
    with pytest.raises(ModelUnavailable, match=r"only 6\.0 GiB is free"):
        await _use(manager, "a")
    assert rec.events == []
    await manager.close()


async def test_close_abandons_a_load_in_progress(rec: Recorder) -> None:
    """A stop during a cold load does not sit the load out: waiters get 503, the
    half-started backend is stopped, close() returns at once."""
    rec.hang.add("a")
    manager = await _manager(rec, start_timeout_seconds=300)
    waiter = asyncio.create_task(_use(manager, "a"))
    await asyncio.sleep(0.2)
    assert manager.route_state("a") is ModelState.LOADING
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(manager.close(), 5)
    assert asyncio.get_running_loop().time() - started < 2
    with pytest.raises((ShuttingDown, ModelUnavailable)):
        await waiter
    assert rec.events == ["load a", "stop a"]
    stats = {s["route"]: s for s in manager.snapshot()}
    assert "shutting down" in stats["a"]["last_error"]


async def test_removing_a_loading_route_abandons_its_load(rec: Recorder) -> None:
    rec.hang.add("a")
    manager = await _manager(rec, start_timeout_seconds=300)
    waiter = asyncio.create_task(_use(manager, "a"))
    await asyncio.sleep(0.2)
    manager.reconfigure(catalog("exclusive", ("b",)))
    with pytest.raises(Exception, match="removed"):
        await asyncio.wait_for(waiter, 5)
    for _ in range(50):
        if "a" not in manager.slots:
            break
        await asyncio.sleep(0.05)
    assert "a" not in manager.slots
    assert rec.events == ["load a", "stop a"] and rec.live == set()
    await _use(manager, "b")  # the GPU is free for the others
    await manager.close()


async def test_the_last_release_still_starts_the_idle_timer(rec: Recorder) -> None:
    # A release wakes the scheduler only when there is something to do (ModelManager.release).
    manager = await _manager(rec, idle_seconds=0.3)
    first = await manager.acquire("a")
    second = await manager.acquire("a")
    manager.release(first)  # the other request still holds it
    await asyncio.sleep(0.5)
    assert rec.events == ["load a"]
    manager.release(second)  # idle now: its timer starts, and it is unloaded
    await asyncio.sleep(0.6)
    assert rec.events == ["load a", "stop a"]
    await manager.close()

"""Warm standby through the manager with a fake backend that sleeps: every decision
(sleep instead of unload, the RAM budget, wake on request, the probe after each wake,
the fallbacks) deterministically. The real engine's side is in tests/backends/vllm/test_standby.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmhost.estimate.figures import CUDA_GRAPH_BYTES
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.state import ModelState
from llmhost.units import GIB
from tests.fakes import FakeGpu, Recorder, catalog
from tests.lifecycle.clock import ManualClock
from tests.lifecycle.support import GatedRecorder, start_manager, use, wait_state, wait_until, within


async def _manager(
    rec: Recorder,
    *,
    routes: tuple[str, ...] = ("a", "b"),
    level: int = 1,
    unavailable: str | None = None,
    **host: Any,
) -> tuple[ModelManager, ManualClock]:
    if rec.gpu is None:
        rec.gpu = FakeGpu()
    standby = {"standby": "sleep", "sleep_level": level}
    manager, clock = start_manager(
        rec,
        policy=str(host.pop("policy", "exclusive")),
        routes=routes,
        every_route=standby,
        standby_query=lambda: unavailable,
        **host,
    )
    await wait_until(manager, lambda: manager.scheduler.ctx.standby.known)  # vLLM's answer, from a thread
    return manager, clock


async def _use(manager: ModelManager, route: str) -> None:
    await within(use(manager, route))


def _stats(manager: ModelManager) -> dict[str, dict[str, Any]]:
    return {s["route"]: s for s in manager.snapshot()}


async def test_a_swap_puts_the_other_model_to_sleep_and_wakes_it_back() -> None:
    rec = Recorder()
    manager, _ = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    assert manager.route_state("a") is ModelState.ASLEEP
    assert rec.gpu is not None and rec.gpu.used["a"] == rec.residual  # its GPU memory given back
    stats = _stats(manager)["a"]
    assert stats["state"] == "asleep" and stats["standby"] == "on"
    assert stats["standby_ram_bytes"] == 2 * GIB and stats["sleeps"] == 1

    await _use(manager, "a")
    assert rec.events == ["load a", "sleep a", "load b", "sleep b", "wake a"]
    assert rec.loads == {"a": 1, "b": 1}  # a came back without a cold load
    stats = _stats(manager)["a"]
    assert stats["wakes"] == 1 and stats["wake_seconds"]["last"] is not None
    assert stats["standby_ram_bytes"] is None and stats["state"] == "ready"
    await manager.close()
    assert rec.live == set() and rec.asleep == {}


async def test_concurrent_requests_share_one_wake() -> None:
    rec = GatedRecorder()
    manager, _ = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    gate = rec.gate("wake a")
    requests = [asyncio.create_task(_use(manager, "a")) for _ in range(8)]
    await wait_state(manager, "a", ModelState.WAKING)
    await wait_until(manager, lambda: len(manager.slots["a"].waiting) == 8)
    waking = _stats(manager)["a"]
    assert waking["state"] == "waking" and waking["waiting"] == 8  # shown like a load
    gate.set()
    await within(asyncio.gather(*requests))
    assert rec.events.count("wake a") == 1
    await manager.close()


async def test_an_asleep_model_counts_as_free_memory_under_fit() -> None:
    rec = Recorder(gpu=FakeGpu(total_bytes=16 * GIB), memory={"a": 10 * GIB, "b": 10 * GIB})
    manager, _ = await _manager(rec, policy="fit")
    await _use(manager, "a")
    await _use(manager, "b")  # does not fit beside a: a sleeps, and its memory is free
    assert rec.events == ["load a", "sleep a", "load b"]
    await _use(manager, "a")
    assert rec.events[-2:] == ["sleep b", "wake a"]
    await manager.close()


async def test_the_ram_budget_shuts_the_least_recently_used_asleep_model_down() -> None:
    rec = Recorder()
    manager, _ = await _manager(rec, routes=("a", "b", "c"), standby_ram_gib=3)  # room for one
    for route in ("a", "b", "c"):
        await _use(manager, route)
    # b may only sleep once a (asleep, least recently used) is shut down.
    assert rec.events == ["load a", "sleep a", "load b", "stop a", "sleep b", "load c"]
    assert manager.route_state("a") is ModelState.STOPPED
    assert manager.route_state("b") is ModelState.ASLEEP
    await manager.close()


async def test_a_model_too_big_for_the_ram_budget_shuts_down() -> None:
    rec = Recorder(ram={"a": 8 * GIB})
    manager, _ = await _manager(rec, standby_ram_gib=4)
    await _use(manager, "a")
    await _use(manager, "b")
    assert rec.events == ["load a", "stop a", "load b"]
    await manager.close()


async def test_level_two_holds_no_ram() -> None:
    rec = Recorder(ram={"a": 8 * GIB})
    manager, _ = await _manager(rec, level=2, standby_ram_gib=1)
    await _use(manager, "a")
    await _use(manager, "b")
    assert manager.route_state("a") is ModelState.ASLEEP
    assert _stats(manager)["a"]["standby_ram_bytes"] == 0
    await manager.close()


@pytest.mark.parametrize("how", ["raises", "probe differs"])
async def test_a_failed_wake_shuts_the_engine_down_and_cold_loads(how: str) -> None:
    rec = Recorder()
    (rec.fail_wake if how == "raises" else rec.corrupt_wake).add("a")
    manager, _ = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    async with manager.lease("a") as lease:
        # Served by a fresh engine: never by the one whose wake was not verified.
        assert lease.backend.woken is False  # type: ignore[attr-defined]
    assert rec.events == ["load a", "sleep a", "load b", "sleep b", "wake a", "stop a", "load a"]
    stats = _stats(manager)["a"]
    assert stats["wake_failures"] == 1 and stats["wakes"] == 0 and stats["loads"] == 2
    expected = "cuMemCreate failed" if how == "raises" else "'!!!' instead of '2, 3, 5'"
    assert expected in str(stats["last_wake_error"])
    assert stats["standby"] == "on"  # one failure is not enough to give up
    await manager.close()


async def test_two_failed_wakes_disable_standby_for_the_route() -> None:
    rec = Recorder(corrupt_wake={"a"})
    manager, _ = await _manager(rec)
    for _ in range(2):
        await _use(manager, "a")
        await _use(manager, "b")
    await _use(manager, "a")  # second failed wake
    stats = _stats(manager)["a"]
    assert stats["standby"] == "disabled" and "2 failed" in str(stats["standby_reason"])
    await _use(manager, "b")
    assert rec.events[-2:] == ["stop a", "wake b"]  # a swaps by shutdown now; b still sleeps
    assert stats["wake_failures"] == 2
    await manager.close()


async def test_a_failed_sleep_shuts_the_engine_down() -> None:
    rec = Recorder(fail_sleep={"a"})
    manager, _ = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    assert rec.events == ["load a", "sleep a", "stop a", "load b"]
    assert manager.route_state("a") is ModelState.STOPPED
    await manager.close()


async def test_an_asleep_model_is_shut_down_after_its_idle_time() -> None:
    rec = Recorder()
    manager, clock = await _manager(rec, idle_seconds=60)
    await _use(manager, "a")
    await _use(manager, "b")
    assert manager.route_state("a") is ModelState.ASLEEP
    clock.advance(60)
    await wait_state(manager, "a", ModelState.STOPPED)
    assert "stop a" in rec.events and "a" not in rec.asleep
    await manager.close()


async def test_idle_unload_of_a_ready_model_shuts_it_down() -> None:
    # Only making room sleeps: an idle model gives its RAM back too.
    rec = Recorder()
    manager, clock = await _manager(rec, idle_seconds=60)
    await _use(manager, "a")
    clock.advance(60)
    await wait_state(manager, "a", ModelState.STOPPED)
    assert rec.events == ["load a", "stop a"]
    await manager.close()


async def test_closing_the_host_shuts_asleep_models_down() -> None:
    rec = Recorder()
    manager, _ = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    await within(manager.close())
    assert rec.live == set() and rec.asleep == {}
    assert manager.route_state("a") is ModelState.STOPPED


async def test_a_platform_without_sleep_mode_swaps_by_shutdown() -> None:
    rec = Recorder()
    manager, _ = await _manager(rec, unavailable="vLLM has no sleep mode on this machine's cpu platform")
    await _use(manager, "a")
    await _use(manager, "b")
    assert rec.events == ["load a", "stop a", "load b"]
    stats = _stats(manager)["a"]
    assert stats["standby"] == "unavailable" and "cpu platform" in str(stats["standby_reason"])
    await manager.close()


async def test_an_engine_that_cannot_sleep_swaps_by_shutdown() -> None:
    rec = Recorder(standby_problem="the probe after the cold load failed")
    manager, _ = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    assert rec.events == ["load a", "stop a", "load b"]
    assert _stats(manager)["a"]["standby"] == "unavailable"
    await manager.close()


async def test_a_model_holding_a_lease_past_the_drain_bound_is_unloaded_not_slept() -> None:
    rec = Recorder()
    manager, clock = await _manager(rec, drain_timeout_seconds=5, max_hold_seconds=0.0)
    stuck = await within(manager.acquire("a"))
    b_request = asyncio.create_task(_use(manager, "b"))
    await wait_until(manager, lambda: manager.slots["a"].eviction is not None)
    clock.advance(5)
    await within(b_request)
    assert rec.events == ["load a", "stop a", "load b"]  # vLLM's sleep would abort it
    assert stuck.revoked is not None
    manager.release(stuck)
    await manager.close()


async def test_a_reload_shuts_an_asleep_model_down() -> None:
    rec = Recorder()
    manager, _ = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    changed = catalog("exclusive", ("a", "b"), every_route={"standby": "sleep", "idle_seconds": 99})
    manager.reconfigure(changed)
    await wait_state(manager, "a", ModelState.STOPPED)  # its new settings apply at its next load
    await _use(manager, "a")
    assert rec.loads["a"] == 2
    await manager.close()


async def test_standby_off_routes_never_sleep() -> None:
    rec = Recorder(gpu=FakeGpu())
    manager, _ = start_manager(rec, cat=catalog(), standby_query=lambda: None)
    await _use(manager, "a")
    await _use(manager, "b")
    assert rec.events == ["load a", "stop a", "load b"]
    assert _stats(manager)["a"]["standby"] == "off"
    await manager.close()


@pytest.mark.parametrize(
    ("unavailable", "budget_gib"), [(None, 16 - 0.75 - 0.75), ("no sleep mode", 16 - 0.75)]
)
async def test_a_standby_engine_leaves_room_to_wake_beside_the_others(
    unavailable: str | None, budget_gib: float
) -> None:
    # Sized to fill the card, a's engine could not wake later beside b asleep (b keeps its
    # CUDA context): it leaves engine_margin_gib free for each other standby route.
    rec = Recorder(gpu=FakeGpu(total_bytes=16 * GIB))
    manager, _ = await _manager(rec, unavailable=unavailable)
    await _use(manager, "a")
    assert _stats(manager)["a"]["memory_budget_bytes"] == pytest.approx(budget_gib * GIB, abs=GIB / 1000)
    await _use(manager, "b")  # a is asleep: what it keeps is already out of the free reading
    free_then = 16 * GIB - rec.residual if unavailable is None else 16 * GIB
    assert _stats(manager)["b"]["memory_budget_bytes"] == pytest.approx(
        free_then - 0.75 * GIB, abs=GIB / 1000
    )
    await manager.close()


@pytest.mark.parametrize(("graphs", "keeps"), [(True, "offloaded"), (False, "on_gpu")])
async def test_an_engine_keeping_its_cuda_graphs_asleep_gets_room_for_them(graphs: bool, keeps: str) -> None:
    # vLLM keeps an asleep engine's CUDA-graph pool on the GPU unless sleep_mode_offload_cudagraph
    # is on (the host turns it on for standby routes): with it off in b's [engine], a leaves
    # room for b's graphs too, and /stats says where b's graphs go while it sleeps.
    rec = Recorder(gpu=FakeGpu(total_bytes=16 * GIB))
    b_engine = {"standby": "sleep", "sleep_level": 1, "engine": {"sleep_mode_offload_cudagraph": graphs}}
    cat = catalog("exclusive", ("a", "b"), every_route={"standby": "sleep"}, engine_margin_gib=0.75)
    cat = cat.model_copy(update={"routes": {**cat.routes, "b": cat.routes["b"].model_copy(update=b_engine)}})
    manager, _ = start_manager(rec, cat=cat, standby_query=lambda: None)
    await wait_until(manager, lambda: manager.scheduler.ctx.standby.known)
    await _use(manager, "a")
    graph_room = 0 if graphs else CUDA_GRAPH_BYTES
    expected = 16 * GIB - 0.75 * GIB - (0.75 * GIB + graph_room)
    assert _stats(manager)["a"]["memory_budget_bytes"] == pytest.approx(expected, abs=GIB / 1000)
    assert _stats(manager)["b"]["standby_cudagraphs"] == keeps
    assert _stats(manager)["a"]["standby_cudagraphs"] == "offloaded"  # the host's default
    await manager.close()

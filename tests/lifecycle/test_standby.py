"""Warm standby through the manager with a fake backend that sleeps: every decision
(sleep instead of unload, the RAM budget, wake on request, the probe after each wake,
the fallbacks) deterministically. The real engine's side is in tests/backends/test_vllm_standby.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmhost.gpu import GIB
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.state import ModelState
from tests.fakes import FakeGpu, Recorder, catalog


async def _manager(
    rec: Recorder,
    *,
    routes: tuple[str, ...] = ("a", "b"),
    level: int = 1,
    unavailable: str | None = None,
    **host: object,
) -> ModelManager:
    if rec.gpu is None:
        rec.gpu = FakeGpu()
    standby = {"standby": "sleep", "sleep_level": level}
    manager = ModelManager(
        catalog(str(host.pop("policy", "exclusive")), routes, every_route=standby, **host),
        rec.factory,
        rec.gpu,
        standby_check=lambda: unavailable,
    )
    manager.start()
    await asyncio.sleep(0.05)  # the standby check runs in a thread
    return manager


async def _use(manager: ModelManager, route: str, seconds: float = 0.01) -> None:
    async with manager.lease(route):
        await asyncio.sleep(seconds)


def _stats(manager: ModelManager) -> dict[str, dict[str, Any]]:
    return {s["route"]: s for s in manager.snapshot()}


async def test_a_swap_puts_the_other_model_to_sleep_and_wakes_it_back() -> None:
    rec = Recorder()
    manager = await _manager(rec)
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
    rec = Recorder(wake_seconds=0.2)
    manager = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    requests = [asyncio.create_task(_use(manager, "a")) for _ in range(8)]
    await asyncio.sleep(0.1)
    waking = _stats(manager)["a"]
    assert waking["state"] == "waking" and waking["waiting"] == 8  # shown like a load
    await asyncio.wait_for(asyncio.gather(*requests), 5)
    assert rec.events.count("wake a") == 1
    await manager.close()


async def test_an_asleep_model_counts_as_free_memory_under_fit() -> None:
    rec = Recorder(gpu=FakeGpu(total_bytes=16 * GIB), memory={"a": 10 * GIB, "b": 10 * GIB})
    manager = await _manager(rec, policy="fit")
    await _use(manager, "a")
    await _use(manager, "b")  # does not fit beside a: a sleeps, and its memory is free
    assert rec.events == ["load a", "sleep a", "load b"]
    await _use(manager, "a")
    assert rec.events[-2:] == ["sleep b", "wake a"]
    await manager.close()


async def test_the_ram_budget_shuts_the_least_recently_used_asleep_model_down() -> None:
    rec = Recorder()
    manager = await _manager(rec, routes=("a", "b", "c"), standby_ram_gib=3)  # room for one
    for route in ("a", "b", "c"):
        await _use(manager, route)
    # b may only sleep once a (asleep, least recently used) is shut down.
    assert rec.events == ["load a", "sleep a", "load b", "stop a", "sleep b", "load c"]
    assert manager.route_state("a") is ModelState.STOPPED
    assert manager.route_state("b") is ModelState.ASLEEP
    await manager.close()


async def test_a_model_too_big_for_the_ram_budget_shuts_down() -> None:
    rec = Recorder(ram={"a": 8 * GIB})
    manager = await _manager(rec, standby_ram_gib=4)
    await _use(manager, "a")
    await _use(manager, "b")
    assert rec.events == ["load a", "stop a", "load b"]
    await manager.close()


async def test_level_two_holds_no_ram() -> None:
    rec = Recorder(ram={"a": 8 * GIB})
    manager = await _manager(rec, level=2, standby_ram_gib=1)
    await _use(manager, "a")
    await _use(manager, "b")
    assert manager.route_state("a") is ModelState.ASLEEP
    assert _stats(manager)["a"]["standby_ram_bytes"] == 0
    await manager.close()


@pytest.mark.parametrize("how", ["raises", "probe differs"])
async def test_a_failed_wake_shuts_the_engine_down_and_cold_loads(how: str) -> None:
    rec = Recorder()
    (rec.fail_wake if how == "raises" else rec.corrupt_wake).add("a")
    manager = await _manager(rec)
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
    manager = await _manager(rec)
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
    manager = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    assert rec.events == ["load a", "sleep a", "stop a", "load b"]
    assert manager.route_state("a") is ModelState.STOPPED
    await manager.close()


async def test_an_asleep_model_is_shut_down_after_its_idle_time() -> None:
    rec = Recorder()
    manager = await _manager(rec, idle_seconds=0.6)
    await _use(manager, "a")
    await _use(manager, "b")
    assert manager.route_state("a") is ModelState.ASLEEP
    await asyncio.sleep(1.0)
    assert manager.route_state("a") is ModelState.STOPPED
    assert "stop a" in rec.events and "a" not in rec.asleep
    await manager.close()


async def test_idle_unload_of_a_ready_model_shuts_it_down() -> None:
    # Only making room sleeps: an idle model gives its RAM back too.
    rec = Recorder()
    manager = await _manager(rec, idle_seconds=0.3)
    await _use(manager, "a")
    await asyncio.sleep(0.6)
    assert rec.events == ["load a", "stop a"]
    await manager.close()


async def test_closing_the_host_shuts_asleep_models_down() -> None:
    rec = Recorder()
    manager = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    await asyncio.wait_for(manager.close(), 5)
    assert rec.live == set() and rec.asleep == {}
    assert manager.route_state("a") is ModelState.STOPPED


async def test_a_platform_without_sleep_mode_swaps_by_shutdown() -> None:
    rec = Recorder()
    manager = await _manager(rec, unavailable="vLLM has no sleep mode on this machine's cpu platform")
    await _use(manager, "a")
    await _use(manager, "b")
    assert rec.events == ["load a", "stop a", "load b"]
    stats = _stats(manager)["a"]
    assert stats["standby"] == "unavailable" and "cpu platform" in str(stats["standby_reason"])
    await manager.close()


async def test_an_engine_that_cannot_sleep_swaps_by_shutdown() -> None:
    rec = Recorder(standby_problem="the probe after the cold load failed")
    manager = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    assert rec.events == ["load a", "stop a", "load b"]
    assert _stats(manager)["a"]["standby"] == "unavailable"
    await manager.close()


async def test_a_model_holding_a_lease_past_the_drain_bound_is_unloaded_not_slept() -> None:
    rec = Recorder()
    manager = await _manager(rec, drain_timeout_seconds=0.2, max_hold_seconds=0.0)
    stuck = await manager.acquire("a")
    await asyncio.wait_for(_use(manager, "b"), 5)
    assert rec.events == ["load a", "stop a", "load b"]  # vLLM's sleep would abort it
    assert stuck.revoked is not None
    manager.release(stuck)
    await manager.close()


async def test_a_reload_shuts_an_asleep_model_down() -> None:
    rec = Recorder()
    manager = await _manager(rec)
    await _use(manager, "a")
    await _use(manager, "b")
    changed = catalog("exclusive", ("a", "b"), every_route={"standby": "sleep", "idle_seconds": 99})
    manager.reconfigure(changed)
    await asyncio.sleep(0.3)
    assert manager.route_state("a") is ModelState.STOPPED  # its new settings apply at its next load
    await _use(manager, "a")
    assert rec.loads["a"] == 2
    await manager.close()


async def test_standby_off_routes_never_sleep() -> None:
    rec = Recorder(gpu=FakeGpu())
    manager = ModelManager(catalog(), rec.factory, rec.gpu, standby_check=lambda: None)  # type: ignore[arg-type]
    manager.start()
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
    manager = await _manager(rec, unavailable=unavailable)
    await _use(manager, "a")
    assert _stats(manager)["a"]["memory_budget_bytes"] == pytest.approx(budget_gib * GIB, abs=GIB / 1000)
    await _use(manager, "b")  # a is asleep: what it keeps is already out of the free reading
    free_then = 16 * GIB - rec.residual if unavailable is None else 16 * GIB
    assert _stats(manager)["b"]["memory_budget_bytes"] == pytest.approx(
        free_then - 0.75 * GIB, abs=GIB / 1000
    )
    await manager.close()

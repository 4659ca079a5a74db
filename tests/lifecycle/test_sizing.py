"""Engine memory budgets in GiB: the pure functions, then the manager passing them to vLLM."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from llmhost.config import RouteConfig
from llmhost.errors import ModelUnavailable
from llmhost.gpu.monitor import GpuMemory
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.sizing import (
    engine_budget,
    need_bytes,
    resident_hold_bytes,
    sized_route,
    wants_estimate,
)
from llmhost.units import GIB
from tests.fakes import FakeGpu, Recorder, catalog, no_sleep_mode

# A 16 GB card as NVML reports it (15.99 GiB) with the Windows desktop holding 1.3 GiB.
CARD = int(15.99 * GIB)
DESKTOP = int(1.3 * GIB)
MARGIN = int(0.75 * GIB)


def _route(kind: str = "llm", memory_gib: Any = None, **engine: Any) -> RouteConfig:
    fields: dict[str, Any] = {"name": "r", "kind": kind, "model": "org/m", "memory_gib": memory_gib}
    if engine:
        fields["engine"] = engine
    return RouteConfig(**fields)


def _gpu(free: int, total: int = CARD) -> GpuMemory:
    return GpuMemory(total_bytes=total, free_bytes=free)


@pytest.mark.parametrize(
    ("route", "policy", "gpu", "estimate", "expected_bytes", "reason_part"),
    [
        # auto under exclusive: everything free less the margin, so the KV cache gets the rest.
        (_route(), "exclusive", _gpu(CARD - DESKTOP), None, CARD - DESKTOP - MARGIN, "auto"),
        # auto under fit: the estimate, so other models can stay resident beside it.
        (_route(), "fit", _gpu(CARD - DESKTOP), 7 * GIB, 7 * GIB - MARGIN, "estimated"),
        # auto under fit without an estimate: as under exclusive.
        (_route(), "fit", _gpu(CARD - DESKTOP), None, CARD - DESKTOP - MARGIN, "auto"),
        # memory_gib in GiB, whatever the policy.
        (_route(memory_gib=6.5), "exclusive", _gpu(CARD - DESKTOP), 9 * GIB, int(6.5 * GIB), "memory_gib"),
    ],
)
def test_budget_becomes_a_utilization_vllm_accepts(
    route: RouteConfig,
    policy: str,
    gpu: GpuMemory,
    estimate: int | None,
    expected_bytes: int,
    reason_part: str,
) -> None:
    budget = engine_budget(route, policy, gpu, margin_bytes=MARGIN, estimate_bytes=estimate)
    assert budget.error is None
    assert budget.bytes == expected_bytes
    assert budget.utilization is not None and reason_part in budget.reason
    # vLLM requests ceil(total x utilization) and refuses it when the free memory it sees
    # after its own context (free - margin) is smaller: the rounding must stay inside.
    assert math.ceil(gpu.total_bytes * budget.utilization) <= expected_bytes
    assert math.ceil(gpu.total_bytes * budget.utilization) <= gpu.free_bytes - MARGIN
    assert expected_bytes - gpu.total_bytes * budget.utilization < 0.001 * GIB + gpu.total_bytes / 10_000


def test_fixed_fraction_that_vllm_would_refuse_is_why_auto_exists() -> None:
    """0.9 of a 16 GB card with the desktop running is more than is free (vLLM's refusal)."""
    free_for_engine = CARD - DESKTOP - MARGIN
    assert math.ceil(CARD * 0.9) > free_for_engine
    budget = engine_budget(_route(), "exclusive", _gpu(CARD - DESKTOP), margin_bytes=MARGIN)
    assert budget.utilization is not None and budget.utilization < 0.9


@pytest.mark.parametrize(
    ("route", "gpu", "reason_part"),
    [
        (_route(gpu_memory_utilization=0.8), _gpu(CARD), "from [engine]"),  # the user's value wins
        (_route(), None, "no NVML"),  # vLLM's default applies
        (_route(kind="diffusion"), _gpu(CARD), "not a vLLM engine"),
    ],
)
def test_budget_left_to_the_engine(route: RouteConfig, gpu: GpuMemory | None, reason_part: str) -> None:
    budget = engine_budget(route, "exclusive", gpu, margin_bytes=MARGIN)
    assert budget.utilization is None and budget.error is None
    assert reason_part in budget.reason
    assert sized_route(route, budget) is route


@pytest.mark.parametrize(
    ("route", "free", "message"),
    [
        (_route(memory_gib=14.0), CARD - DESKTOP, r"needs 14\.00 GiB \(memory_gib 14\) but only 14\.69 GiB"),
        (_route(), int(0.5 * GIB), r"only 0\.50 GiB of 15\.99 GiB GPU memory is free"),
    ],
)
def test_budget_refuses_what_cannot_start(route: RouteConfig, free: int, message: str) -> None:
    budget = engine_budget(route, "exclusive", _gpu(free), margin_bytes=MARGIN)
    assert budget.utilization is None
    assert budget.error is not None
    assert "engine_margin_gib" in budget.error
    assert re.search(message, budget.error), budget.error


def test_sized_route_sets_only_the_utilization() -> None:
    route = _route(max_model_len=8192)
    budget = engine_budget(route, "exclusive", _gpu(12 * GIB, 16 * GIB), margin_bytes=GIB)
    sized = sized_route(route, budget)
    assert sized.engine == {"max_model_len": 8192, "gpu_memory_utilization": 0.6875}
    assert route.engine == {"max_model_len": 8192}  # the configured route is unchanged


@pytest.mark.parametrize(
    ("route", "policy", "measured", "estimate", "expected"),
    [
        (_route(memory_gib=6.0), "exclusive", None, None, 6 * GIB),
        (_route(gpu_memory_utilization=0.5), "fit", None, None, 8 * GIB),
        (_route(), "exclusive", 9 * GIB, 7 * GIB, None),  # auto takes what is free: no fixed need
        (_route(), "fit", 9 * GIB, 7 * GIB, 7 * GIB),
        (_route(), "fit", 9 * GIB, None, 9 * GIB),
        (_route(kind="diffusion"), "fit", 5 * GIB, None, 5 * GIB),
        (_route(kind="diffusion"), "fit", None, None, None),
    ],
)
def test_need_bytes(
    route: RouteConfig, policy: str, measured: int | None, estimate: int | None, expected: int | None
) -> None:
    assert need_bytes(route, policy, 16 * GIB, measured_bytes=measured, estimate_bytes=estimate) == expected


# ---- the manager hands the budget to the engine ------------------------------------------


class _Capture(Recorder):
    engines: list[dict[str, Any]]

    def factory(self, route: RouteConfig, host: Any) -> Any:
        self.engines.append(dict(route.engine))
        return super().factory(route, host)


async def test_manager_sizes_auto_engine_from_nvml_at_load_time() -> None:
    rec = _Capture()
    rec.engines = []
    rec.gpu = FakeGpu(total_bytes=16 * GIB, used={"desktop": 2 * GIB})
    manager = ModelManager(
        catalog("exclusive", ("a",), engine_margin_gib=1.0), rec.factory, rec.gpu, standby_query=no_sleep_mode
    )
    manager.start()
    async with manager.lease("a"):
        pass
    # 14 GiB free, 1 GiB margin: 13 GiB of 16.
    assert rec.engines == [{"gpu_memory_utilization": 0.8125}]
    stats = {s["route"]: s for s in manager.snapshot()}
    assert stats["a"]["memory_budget_bytes"] == 13 * GIB
    await manager.close()


async def test_manager_fit_uses_the_estimate_and_keeps_both() -> None:
    rec = _Capture()
    rec.engines = []
    rec.gpu = FakeGpu(total_bytes=16 * GIB)
    rec.memory = {"a": 6 * GIB, "b": 6 * GIB}
    estimates = {"a": 6 * GIB, "b": 6 * GIB}  # 0.75 GiB of it the engine's own context
    manager = ModelManager(
        catalog("fit", ("a", "b")),
        rec.factory,
        rec.gpu,
        estimator=lambda r: estimates[r.name],
        standby_query=no_sleep_mode,
    )
    manager.start()
    async with manager.lease("a"):
        pass
    async with manager.lease("b"):
        pass
    assert rec.live == {"a", "b"}
    assert rec.engines == [{"gpu_memory_utilization": 0.3281}, {"gpu_memory_utilization": 0.3281}]
    await manager.close()


async def test_manager_refuses_a_budget_that_cannot_start_without_loading() -> None:
    rec = _Capture()
    rec.engines = []
    rec.gpu = FakeGpu(total_bytes=16 * GIB, used={"desktop": int(15.6 * GIB)})
    manager = ModelManager(catalog("exclusive", ("a",)), rec.factory, rec.gpu, standby_query=no_sleep_mode)
    manager.start()
    with pytest.raises(ModelUnavailable, match="engine_margin_gib"):
        async with manager.lease("a"):
            pass
    assert rec.engines == []
    await manager.close()


def test_auto_budget_keeps_the_standby_reserve_free() -> None:
    free = CARD - DESKTOP
    plain = engine_budget(_route(), "exclusive", _gpu(free), margin_bytes=MARGIN)
    kept = engine_budget(_route(), "exclusive", _gpu(free), margin_bytes=MARGIN, reserve_bytes=2 * MARGIN)
    assert plain.bytes is not None and kept.bytes == plain.bytes - 2 * MARGIN
    assert "kept for asleep engines" in kept.reason
    crowded = engine_budget(
        _route(), "exclusive", _gpu(2 * MARGIN), margin_bytes=MARGIN, reserve_bytes=MARGIN
    )
    assert crowded.error is not None and "nothing left" in crowded.error


# ---- resident routes (resident = true) ---------------------------------------------------


def _candidate(kind: str = "llm", memory_gib: Any = None, **engine: Any) -> RouteConfig:
    return _route(kind, memory_gib, **engine).model_copy(update={"resident": True})


@pytest.mark.parametrize(
    ("route", "policy", "measured", "estimate", "expected"),
    [
        # A resident engine shares the GPU under either policy: its estimate is its need...
        (_candidate(), "exclusive", 9 * GIB, 2 * GIB, 2 * GIB),
        (_candidate(), "fit", None, 2 * GIB, 2 * GIB),
        (_candidate(), "exclusive", 3 * GIB, None, 3 * GIB),  # ... else what its last load took
        (_candidate(), "exclusive", None, None, None),
        (_candidate(memory_gib=1.5), "exclusive", None, 2 * GIB, int(1.5 * GIB)),
        # A resident pipeline: measured, else estimated before its first load.
        (_candidate(kind="diffusion"), "exclusive", None, 3 * GIB, 3 * GIB),
        (_candidate(kind="diffusion"), "exclusive", 4 * GIB, 3 * GIB, 4 * GIB),
    ],
)
def test_need_bytes_of_a_resident_route(
    route: RouteConfig, policy: str, measured: int | None, estimate: int | None, expected: int | None
) -> None:
    assert need_bytes(route, policy, 16 * GIB, measured_bytes=measured, estimate_bytes=estimate) == expected


def test_a_resident_engine_takes_its_estimate_under_exclusive_not_the_card() -> None:
    free = CARD - DESKTOP
    budget = engine_budget(_candidate(), "exclusive", _gpu(free), margin_bytes=MARGIN, estimate_bytes=2 * GIB)
    assert budget.error is None and budget.bytes == 2 * GIB - MARGIN
    assert "estimated need 2.0 GiB (resident)" in budget.reason
    # Not estimated (its config could not be read): it takes what is free, and says so.
    blind = engine_budget(_candidate(), "exclusive", _gpu(free), margin_bytes=MARGIN)
    assert blind.bytes == free - MARGIN and "need not estimated: set memory_gib" in blind.reason


def test_auto_budget_keeps_room_for_a_resident_route_not_loaded() -> None:
    free = CARD - DESKTOP
    kept = engine_budget(_route(), "exclusive", _gpu(free), margin_bytes=MARGIN, reserve_bytes=2 * GIB)
    assert kept.bytes == free - MARGIN - 2 * GIB
    assert "2.00 GiB kept for asleep engines and resident ones not loaded" in kept.reason
    # A fixed size stays what it is.
    fixed = engine_budget(
        _route(memory_gib=4.0), "exclusive", _gpu(free), margin_bytes=MARGIN, reserve_bytes=GIB
    )
    assert fixed.bytes == 4 * GIB


@pytest.mark.parametrize(
    ("route", "measured", "estimate", "expected"),
    [
        (_candidate(), 3 * GIB, 2 * GIB, 3 * GIB),  # what its last load took, when larger
        (_candidate(), GIB, 2 * GIB, 2 * GIB),  # else the estimate (it asks for that much again)
        (_candidate(), None, 2 * GIB, 2 * GIB),  # the estimate counts the CUDA context
        (_candidate(memory_gib=1.5), None, 2 * GIB, int(1.5 * GIB) + MARGIN),  # budget + its context
        (_candidate(gpu_memory_utilization=0.25), None, None, 4 * GIB + MARGIN),
        (_candidate(kind="diffusion", memory_gib=3.0), None, None, 3 * GIB),  # the host's context
        (_candidate(), None, None, 0),  # unknown: nothing can be kept for it
    ],
)
def test_resident_hold_bytes(
    route: RouteConfig, measured: int | None, estimate: int | None, expected: int
) -> None:
    held = resident_hold_bytes(
        route, 16 * GIB, margin_bytes=MARGIN, measured_bytes=measured, estimate_bytes=estimate
    )
    assert held == expected


@pytest.mark.parametrize(
    ("route", "policy", "expected"),
    [
        (_route(), "exclusive", False),
        (_route(), "fit", True),
        (_route(memory_gib=2.0), "fit", False),
        (_route(kind="diffusion"), "fit", False),
        (_candidate(), "exclusive", True),
        (_candidate(kind="diffusion"), "exclusive", True),
        (_candidate(kind="embedding"), "exclusive", True),
        (_candidate(memory_gib=2.0), "exclusive", False),  # its size is known: nothing to estimate
        (_candidate(gpu_memory_utilization=0.2), "fit", False),
    ],
)
def test_wants_estimate(route: RouteConfig, policy: str, expected: bool) -> None:
    assert wants_estimate(route, policy) is expected

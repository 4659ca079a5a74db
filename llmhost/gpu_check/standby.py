"""Measure warm standby on this machine: the check users run on their GPU (docs/standby.md).

For each llm route, one at a time: a cold start of its engine (as the host sizes and
creates it, standby on), the probe recorded after it, then for each sleep level a
sleep (the GPU memory NVML sees come back, the host RAM the engine's processes now
hold) and a wake followed by the probe, which must reproduce the recorded one. Where
vLLM has no sleep mode (a CPU, tiny models) it still runs: it reports the cold start
and the probe, and standby as unavailable with vLLM's reason.

Driven by `scripts/gpu_check.py --standby`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from llmhost.backends.base import Probe
from llmhost.backends.vllm.backend import VllmBackend
from llmhost.config import Catalog, RouteConfig
from llmhost.gpu.margin import EngineMargins
from llmhost.gpu.monitor import GpuMonitor
from llmhost.lifecycle.sizing import engine_budget, sized_route
from llmhost.units import GIB


@dataclass
class LevelResult:
    level: int
    sleep_seconds: float | None = None
    wake_seconds: float | None = None  # the wake and its probe, as the host times them
    gpu_freed_gib: float | None = None  # NVML: free memory after the sleep less before it
    ram_held_gib: float | None = None  # the engine processes' RSS growth across the sleep
    probe_matches: bool | None = None
    probe_after_wake: str | None = None
    error: str | None = None


@dataclass
class StandbyResult:
    route: str
    model: str
    ok: bool = False
    error: str | None = None
    standby: str = "unknown"  # "available", or "unavailable: why"
    cold_start_seconds: float | None = None
    probe: str | None = None
    levels: list[LevelResult] = field(default_factory=list)


async def check_standby(
    catalog: Catalog, gpu: GpuMonitor, *, levels: tuple[int, ...] = (1, 2)
) -> list[StandbyResult]:
    results = []
    for route in catalog.routes.values():
        if route.kind != "llm":
            continue
        result = StandbyResult(route.name, route.model)
        try:
            await _check_route(route, catalog, gpu, result, levels)
            result.ok = all(
                level.error is None and level.probe_matches is not False for level in result.levels
            )
        except Exception as exc:  # one broken route must not hide the others
            result.error = str(exc) or type(exc).__name__
        results.append(result)
    return results


async def _check_route(
    route: RouteConfig, catalog: Catalog, gpu: GpuMonitor, result: StandbyResult, levels: tuple[int, ...]
) -> None:
    host = catalog.host
    route = route.model_copy(update={"standby": "sleep"})
    margin = EngineMargins().in_use(host, gpu.name).bytes  # configured, else the default
    budget = engine_budget(route, host.policy, gpu.memory(), margin_bytes=margin)
    if budget.error is not None:
        raise RuntimeError(budget.error)
    backend = VllmBackend(sized_route(route, budget), host)
    started = time.perf_counter()
    try:
        await backend.start()
        recorded = await backend.probe()
        result.cold_start_seconds = round(time.perf_counter() - started, 2)
        result.probe = recorded.text
        problem = backend.standby_problem()
        result.standby = "available" if problem is None else f"unavailable: {problem}"
        if problem is None:
            for level in levels:
                result.levels.append(await _cycle(backend, level, recorded, gpu))
    finally:
        await backend.stop()


async def _cycle(backend: VllmBackend, level: int, recorded: Probe, gpu: GpuMonitor) -> LevelResult:
    result = LevelResult(level)
    try:
        before = gpu.memory()
        started = time.perf_counter()
        ram = await backend.sleep(level)
        result.sleep_seconds = round(time.perf_counter() - started, 2)
        after = gpu.memory()
        if before is not None and after is not None:
            result.gpu_freed_gib = round((after.free_bytes - before.free_bytes) / GIB, 2)
        if ram is not None:
            result.ram_held_gib = round(ram / GIB, 2)
        started = time.perf_counter()
        await backend.wake(level)
        probe = await backend.probe()
        result.wake_seconds = round(time.perf_counter() - started, 2)
        result.probe_matches = probe.token_ids == recorded.token_ids
        result.probe_after_wake = probe.text
    except Exception as exc:
        result.error = str(exc) or type(exc).__name__
    return result


def render(results: list[StandbyResult], gpu: GpuMonitor) -> str:
    memory = gpu.memory()
    head = (
        f"GPU: none ({gpu.unavailable_reason})"
        if memory is None
        else f"GPU: {gpu.name}, {memory.total_bytes / GIB:.2f} GiB total"
    )
    rows = [
        ("ROUTE", "COLD START S", "LEVEL", "SLEEP S", "WAKE S", "GPU FREED GIB", "RAM HELD GIB", "RESULT")
    ]
    lines = [head]
    for r in results:
        cold = _num(r.cold_start_seconds)
        if r.error is not None:
            rows.append((r.route, cold, "-", "-", "-", "-", "-", f"FAILED: {r.error}"))
        elif not r.levels:
            rows.append((r.route, cold, "-", "-", "-", "-", "-", f"standby {r.standby}"))
        for level in r.levels:
            verdict = (
                f"FAILED: {level.error}"
                if level.error is not None
                else "probe matches"
                if level.probe_matches
                else f"PROBE DIFFERS: {level.probe_after_wake!r} instead of {r.probe!r}"
            )
            rows.append(
                (
                    r.route,
                    cold,
                    str(level.level),
                    _num(level.sleep_seconds),
                    _num(level.wake_seconds),
                    _num(level.gpu_freed_gib),
                    _num(level.ram_held_gib),
                    verdict,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1] for row in rows
    ]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def to_json(results: list[StandbyResult], gpu: GpuMonitor) -> dict[str, Any]:
    memory = gpu.memory()
    return {
        "gpu": {"name": gpu.name, "total_gib": round(memory.total_bytes / GIB, 2) if memory else None},
        "routes": [asdict(r) for r in results],
    }

"""A small fake backend for fast, deterministic tests of the host's own logic.

It stands in for vLLM only where the engine is not the point (the lifecycle manager);
the integration tests run real tiny engines.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

from llmhost.backends.base import Probe
from llmhost.config import Catalog, HostConfig, RouteConfig, parse_catalog
from llmhost.config.text import models_toml
from llmhost.gpu.monitor import GpuMemory
from llmhost.units import GIB

# What vLLM answers on sleep mode on this CPU machine (llmhost.backends.vllm.standby): the
# answer a manager built without a query of its own used to get.
NO_SLEEP_MODE = "vLLM has no sleep mode on this machine's cpu platform (it has one on CUDA, ROCm and XPU)"


def no_sleep_mode() -> str | None:
    """A StandbyQuery (llmhost.lifecycle.inputs) for a platform without sleep mode."""
    return NO_SLEEP_MODE


@dataclass
class FakeGpu:
    """Free memory that loads take and unloads give back (optionally late)."""

    total_bytes: int = 16 * GIB
    used: dict[str, int] = field(default_factory=dict)
    release_lag: float = 0.0  # seconds before an unloaded model's memory shows as free
    name: str | None = "Fake GPU"
    unavailable_reason: str | None = None

    def memory(self) -> GpuMemory:
        return GpuMemory(self.total_bytes, self.total_bytes - sum(self.used.values()))

    def close(self) -> None:
        pass


@dataclass
class Recorder:
    events: list[str] = field(default_factory=list)
    loads: dict[str, int] = field(default_factory=dict)
    load_seconds: float = 0.05
    stop_seconds: float = 0.02
    fail: dict[str, Exception] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    gpu: FakeGpu | None = None
    memory: dict[str, int] = field(default_factory=dict)
    live: set[str] = field(default_factory=set)
    free_at_load: dict[str, int] = field(default_factory=dict)
    models_loaded: list[str] = field(default_factory=list)  # route.model of each load
    # Warm standby: what sleeping holds, and the ways a sleep or a wake goes wrong.
    standby_problem: str | None = None  # every engine's answer to standby_problem()
    ram: dict[str, int] = field(default_factory=dict)  # host RAM a level-1 sleep holds (default 2 GiB)
    residual: int = GIB // 4  # GPU memory an asleep engine keeps (its CUDA context)
    asleep: dict[str, int] = field(default_factory=dict)  # route -> RAM held now
    fail_sleep: set[str] = field(default_factory=set)
    fail_wake: set[str] = field(default_factory=set)
    corrupt_wake: set[str] = field(default_factory=set)  # its probe differs after a wake
    wake_seconds: float = 0.02
    probe_ids: tuple[int, ...] = (11, 12, 13)
    # Set: every engine fills the budget the host gave it (as vLLM's KV cache does) and
    # takes this much beyond it (its CUDA context), instead of `memory`.
    beyond_budget: int | None = None

    def factory(self, route: RouteConfig, host: HostConfig) -> FakeBackend:
        return FakeBackend(route, self)

    def engine_bytes(self, route: RouteConfig) -> int:
        """GPU memory `route`'s engine takes once started."""
        share = route.engine.get("gpu_memory_utilization")
        if self.beyond_budget is not None and self.gpu is not None and share is not None:
            return math.ceil(self.gpu.total_bytes * float(share)) + self.beyond_budget
        return self.memory.get(route.name, 4 * GIB)


class FakeBackend:
    def __init__(self, route: RouteConfig, recorder: Recorder) -> None:
        self.route = route
        self.rec = recorder
        self.dead: str | None = None
        self.woken = False
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        name = self.route.name
        self.rec.events.append(f"load {name}")
        if name in self.rec.hang:
            # A load that never finishes on its own; stop() abandons it, as the real
            # backends do (vLLM's by killing the engine's processes).
            await asyncio.wait_for(self._stopped.wait(), 3600)
            raise RuntimeError("load abandoned")
        await asyncio.sleep(self.rec.load_seconds)
        if name in self.rec.fail:
            raise self.rec.fail[name]
        if self.rec.gpu is not None:
            self.rec.free_at_load[name] = self.rec.gpu.memory().free_bytes
            self.rec.gpu.used[name] = self.rec.engine_bytes(self.route)
        self.rec.loads[name] = self.rec.loads.get(name, 0) + 1
        self.rec.models_loaded.append(self.route.model)
        assert name not in self.rec.live, f"{name} loaded twice"
        self.rec.live.add(name)

    async def stop(self) -> None:
        name = self.route.name
        self._stopped.set()
        self.rec.events.append(f"stop {name}")
        await asyncio.sleep(self.rec.stop_seconds)
        self.rec.asleep.pop(name, None)
        gpu = self.rec.gpu
        if gpu is not None:
            if gpu.release_lag:
                asyncio.get_running_loop().call_later(gpu.release_lag, gpu.used.pop, name, None)
            else:
                gpu.used.pop(name, None)
        self.rec.live.discard(name)

    def failure(self) -> str | None:
        return self.dead

    # ---- warm standby (llmhost.backends.base.Sleeper) ----

    def standby_problem(self) -> str | None:
        return self.rec.standby_problem

    def standby_ram_bytes(self, level: int) -> int | None:
        return 0 if level == 2 else self.rec.ram.get(self.route.name, 2 * GIB)

    async def sleep(self, level: int) -> int | None:
        name = self.route.name
        self.rec.events.append(f"sleep {name}")
        await asyncio.sleep(self.rec.stop_seconds)
        if name in self.rec.fail_sleep:
            raise RuntimeError("sleep went wrong")
        gpu = self.rec.gpu
        if gpu is not None:
            gpu.used[name] = self.rec.residual
        held = self.standby_ram_bytes(level) or 0
        self.rec.asleep[name] = held
        return held

    async def wake(self, level: int) -> None:
        name = self.route.name
        self.rec.events.append(f"wake {name}")
        await asyncio.sleep(self.rec.wake_seconds)
        if name in self.rec.fail_wake:
            raise RuntimeError("cuMemCreate failed")
        self.rec.asleep.pop(name, None)
        if self.rec.gpu is not None:
            self.rec.gpu.used[name] = self.rec.memory.get(name, 4 * GIB)
        self.woken = True

    async def probe(self) -> Probe:
        if self.woken and self.route.name in self.rec.corrupt_wake:
            return Probe((7, 7, 7), "!!!")
        return Probe(self.rec.probe_ids, "2, 3, 5")


def catalog(
    policy: str = "exclusive",
    routes: tuple[str, ...] = ("a", "b"),
    *,
    every_route: dict[str, object] | None = None,
    **host: object,
) -> Catalog:
    """Routes `routes` (each with `every_route`'s keys) under a [host] of `host`.

    The engine margin is pinned at 0.75 GiB, the figure the lifecycle tests' arithmetic
    is written for; `engine_margin_gib=None` leaves it unset (default or measured, as
    tests/gpu/test_margin.py checks)."""
    tables = {
        n: {"kind": "llm", "model": f"org/{n}", "served_names": [f"{n}-model"], **(every_route or {})}
        for n in routes
    }
    settings = {"policy": policy, "engine_margin_gib": 0.75, **host}
    return parse_catalog(models_toml({k: v for k, v in settings.items() if v is not None}, tables))

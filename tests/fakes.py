"""A small fake backend for fast, deterministic tests of the host's own logic.

It stands in for vLLM only where the engine is not the point (the lifecycle manager);
the integration tests run real tiny engines.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from llmhost.config import Catalog, HostConfig, RouteConfig, parse_catalog
from llmhost.config_text import models_toml
from llmhost.gpu import GIB, GpuMemory


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

    def factory(self, route: RouteConfig, host: HostConfig) -> FakeBackend:
        return FakeBackend(route, self)


class FakeBackend:
    def __init__(self, route: RouteConfig, recorder: Recorder) -> None:
        self.route = route
        self.rec = recorder
        self.dead: str | None = None
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
            self.rec.gpu.used[name] = self.rec.memory.get(name, 4 * GIB)
        self.rec.loads[name] = self.rec.loads.get(name, 0) + 1
        self.rec.models_loaded.append(self.route.model)
        assert name not in self.rec.live, f"{name} loaded twice"
        self.rec.live.add(name)

    async def stop(self) -> None:
        name = self.route.name
        self._stopped.set()
        self.rec.events.append(f"stop {name}")
        await asyncio.sleep(self.rec.stop_seconds)
        gpu = self.rec.gpu
        if gpu is not None:
            if gpu.release_lag:
                asyncio.get_running_loop().call_later(gpu.release_lag, gpu.used.pop, name, None)
            else:
                gpu.used.pop(name, None)
        self.rec.live.discard(name)

    def failure(self) -> str | None:
        return self.dead


def catalog(policy: str = "exclusive", routes: tuple[str, ...] = ("a", "b"), **host: object) -> Catalog:
    tables = {n: {"kind": "llm", "model": f"org/{n}", "served_names": [f"{n}-model"]} for n in routes}
    return parse_catalog(models_toml({"policy": policy, **host}, tables))

"""Comparison 6 (memory) and llmhost's side of comparison 3 (swap), in one llmhost process.

Routes A and B under `exclusive`. Cycle 1 loads A (a cold start; the warm-up: vLLM is
imported then). Each later cycle sends one chat to the other route: llmhost unloads the
resident engine and loads the other one, and the client times that request until its
first token: a swap. After every cycle the host process's resident memory (RSS, the
host alone, not its engine processes) is read once the request has ended.

Growth is RSS after the last cycle vs after cycle 1, both with A resident (an odd
number of cycles), so `cycles` load/unload cycles lie between the two readings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.coldstart import llmhost_first_token
from bench.common import log
from bench.routes import Subjects
from bench.servers import start_llmhost

MIB = 1024 * 1024


@dataclass
class MemoryRun:
    health_s: float
    models_s: float
    rss_idle: int  # nothing loaded, right after start-up
    cold_start_s: float  # cycle 1
    rss: list[int] = field(default_factory=list)  # after each cycle
    swaps_s: list[float] = field(default_factory=list)  # cycles 2..
    loads_s: list[float | None] = field(default_factory=list)  # llmhost's own load time, per cycle

    @property
    def growth(self) -> float:
        return (self.rss[-1] - self.rss[0]) / self.rss[0]


def run(subjects: Subjects, run_dir: Path, cycles: int, max_tokens: int, settle: float = 0.5) -> MemoryRun:
    """`cycles` swaps after a warm-up cycle (so `cycles + 1` loads)."""
    a, b = subjects.llm_a, subjects.llm_b
    server = start_llmhost("llmhost-memory", subjects, [a, b], run_dir)
    try:
        time.sleep(settle)
        result = MemoryRun(server.health_s, server.models_s, server.rss_bytes(), 0.0)
        log(f"  llmhost idle RSS {result.rss_idle / MIB:.0f} MiB")
        for cycle in range(1, cycles + 2):
            route = a if cycle % 2 else b
            seconds = llmhost_first_token(server, route, max_tokens)
            result.loads_s.append(server.last_load_s(route.name))
            time.sleep(settle)
            result.rss.append(server.rss_bytes())
            if cycle == 1:
                result.cold_start_s = seconds
            else:
                result.swaps_s.append(seconds)
            kind = "cold start" if cycle == 1 else "swap"
            log(
                f"  cycle {cycle:2d}/{cycles + 1}: {kind} to /{route.name} {seconds:6.2f} s "
                f"(load {result.loads_s[-1]} s), RSS {result.rss[-1] / MIB:.0f} MiB"
            )
    finally:
        server.child.kill()  # the last engine's shutdown is not measured
    return result

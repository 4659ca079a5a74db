"""Which resident models to evict so a target model can load: pure functions, no I/O.

`plan_eviction` sees only numbers and names, so every policy decision can be
unit-tested directly; the scheduler carries the plan out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from llmhost.gpu import GIB, GpuMemory

Policy = Literal["exclusive", "fit"]


@dataclass(frozen=True)
class Resident:
    """A model on the GPU (or loading onto it), as the policy sees it."""

    name: str
    busy: bool  # holds leases or has requests waiting
    last_used: float  # monotonic seconds; larger is more recent
    memory_bytes: int | None  # what it uses, when known


@dataclass(frozen=True)
class Plan:
    evict: tuple[str, ...]  # names, in the order to unload them
    fits: bool  # False: the target cannot fit even with the others gone
    reason: str


def plan_eviction(
    policy: Policy,
    target: str,
    need_bytes: int | None,
    residents: Sequence[Resident],
    gpu: GpuMemory | None,
) -> Plan:
    others = [r for r in residents if r.name != target]
    if policy == "exclusive":
        return Plan(tuple(r.name for r in _lru(others)), True, "exclusive: one model at a time")
    return _plan_fit(target, need_bytes, others, gpu)


def _lru(residents: Sequence[Resident]) -> list[Resident]:
    """Idle models first, then busy ones; least recently used first within each."""
    return sorted(residents, key=lambda r: (r.busy, r.last_used))


def _plan_fit(target: str, need: int | None, others: Sequence[Resident], gpu: GpuMemory | None) -> Plan:
    if gpu is None:
        # Nothing to measure against: keep everything and let the engine judge.
        return Plan((), True, "fit: GPU memory unknown (no NVML), keeping resident models")
    if need is None:
        # Unknown need: the only safe assumption is that it needs the whole GPU.
        return Plan(
            tuple(r.name for r in _lru(others)),
            True,
            f"fit: memory need of {target} unknown, freeing the GPU for it",
        )
    if need > gpu.total_bytes:
        return Plan(
            (),
            False,
            f"{target} needs {need / GIB:.1f} GiB but the GPU has {gpu.total_bytes / GIB:.1f} GiB in total",
        )
    available = gpu.free_bytes
    evict: list[str] = []
    for victim in _lru(others):
        if available >= need:
            break
        evict.append(victim.name)
        available += victim.memory_bytes or 0
    if available >= need:
        why = "fits beside the resident models" if not evict else f"evicting {', '.join(evict)}"
        return Plan(tuple(evict), True, f"fit: {target} needs {need / GIB:.1f} GiB, {why}")
    return Plan(
        (),
        False,
        f"{target} needs {need / GIB:.1f} GiB; only {available / GIB:.1f} GiB "
        "would be free with every other model unloaded (other processes use the rest)",
    )

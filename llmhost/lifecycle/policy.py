"""Which resident models to evict so a target model can load: pure functions, no I/O.

`plan_eviction` sees only numbers and names, so every policy decision can be
unit-tested directly; the scheduler carries the plan out.

A `Candidate` is any model on the GPU as the policy sees it (one that could make room); a
model whose route says `resident = true` is `pinned` and is never evicted to make room
(docs/lifecycle.md, "Resident routes"): the policy applies among the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from llmhost.gpu.monitor import GpuMemory
from llmhost.units import GIB

Policy = Literal["exclusive", "fit"]


@dataclass(frozen=True)
class Candidate:
    """A model on the GPU (or loading onto it), as the policy sees it."""

    name: str
    busy: bool  # holds leases or has requests waiting
    last_used: float  # monotonic seconds; larger is more recent
    memory_bytes: int | None  # what it uses, when known
    asleep: bool = False  # in standby: most of its memory is already free (docs/standby.md)
    pinned: bool = False  # its route says resident = true: never evicted to make room


@dataclass(frozen=True)
class Plan:
    evict: tuple[str, ...]  # names, in the order to unload them
    fits: bool  # False: the target cannot fit even with the others gone
    reason: str


def plan_eviction(
    policy: Policy,
    target: str,
    need_bytes: int | None,
    candidates: Sequence[Candidate],
    gpu: GpuMemory | None,
    *,
    pinned: bool = False,
) -> Plan:
    """What must go for `target` (needing `need_bytes`, None: unknown) to load.

    Pinned models stay whatever the policy. A pinned target (a resident route loading)
    shares the GPU by definition, so it is placed as under `fit` whatever the policy:
    nothing goes if it fits beside what is loaded, else the others, least recently used
    first (the others auto-sized themselves leaving room for it: llmhost.lifecycle.sizing)."""
    others = [r for r in candidates if r.name != target]
    movable = [r for r in others if not r.pinned]
    kept = tuple(r.name for r in others if r.pinned)
    if policy == "exclusive" and not pinned:
        # An asleep model stays asleep: keeping it is the point of standby. What it
        # still holds (a CUDA context) is already out of the free-memory reading.
        awake = [r for r in _lru(movable) if not r.asleep]
        beside = f" beside resident {', '.join(kept)}" if kept else ""
        return Plan(tuple(r.name for r in awake), True, f"exclusive: one model at a time{beside}")
    return _plan_fit(target, need_bytes, movable, gpu, "resident" if pinned else "fit", kept)


def _lru(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Idle models first, then busy ones, asleep ones last (shutting one down frees
    little); least recently used first within each."""
    return sorted(candidates, key=lambda r: (r.asleep, r.busy, r.last_used))


def _plan_fit(
    target: str,
    need: int | None,
    others: Sequence[Candidate],
    gpu: GpuMemory | None,
    label: str,
    kept: tuple[str, ...],
) -> Plan:
    """`others` are the models that may go; `kept` the pinned ones that stay."""
    if gpu is None:
        # Nothing to measure against: keep everything and let the engine judge.
        return Plan((), True, f"{label}: GPU memory unknown (no NVML), keeping resident models")
    if need is None:
        # Unknown need: the only safe assumption is that it needs the whole GPU (less
        # what asleep and pinned models keep: see exclusive).
        return Plan(
            tuple(r.name for r in _lru(others) if not r.asleep),
            True,
            f"{label}: memory need of {target} unknown, freeing the GPU for it",
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
        return Plan(tuple(evict), True, f"{label}: {target} needs {need / GIB:.1f} GiB, {why}")
    if kept:
        unloaded = f"every other model but the resident routes ({', '.join(kept)}) unloaded"
        rest = "they and other processes use the rest"
    else:
        unloaded, rest = "every other model unloaded", "other processes use the rest"
    return Plan(
        (),
        False,
        f"{target} needs {need / GIB:.1f} GiB; only {available / GIB:.1f} GiB "
        f"would be free with {unloaded} ({rest})",
    )

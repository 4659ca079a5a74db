"""What the fit estimate says about a route: its need, and a verdict against a card."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from llmhost.estimate.figures import CUDA_CONTEXT_BYTES, TIGHT_FRACTION

Verdict = Literal["fits", "tight", "does not fit", "unknown"]


@dataclass(frozen=True)
class RouteEstimate:
    """Estimated GPU memory of one route, in bytes. None where it cannot be told."""

    weights_bytes: int | None
    kv_cache_bytes: int | None
    overhead_bytes: int | None
    unknown_reason: str | None = None
    max_model_len: int | None = None  # the tokens the KV cache figure is for (llm routes)
    context_bytes: int = CUDA_CONTEXT_BYTES  # the part of overhead that is the CUDA context
    source: str | None = None  # where the figures were read: a path or "the Hub"
    precision: str | None = None  # the weights' form on the GPU ("int8 W8A16 (GPTQ)", "bf16", ...)

    @property
    def need_bytes(self) -> int | None:
        """Weights + KV cache + overhead; None when the weights are unknown."""
        if self.weights_bytes is None:
            return None
        return self.weights_bytes + (self.kv_cache_bytes or 0) + (self.overhead_bytes or 0)

    @property
    def engine_bytes(self) -> int | None:
        """The need less the engine's own CUDA context: what vLLM's gpu_memory_utilization
        budget must cover (vLLM measures free memory after creating its context)."""
        need = self.need_bytes
        return None if need is None else max(need - self.context_bytes, 0)


def verdict(need_bytes: int | None, gpu_bytes: int) -> Verdict:
    """fits: need <= 90% of the card; tight: up to the whole card; else does not fit."""
    if need_bytes is None:
        return "unknown"
    if need_bytes <= TIGHT_FRACTION * gpu_bytes:
        return "fits"
    if need_bytes <= gpu_bytes:
        return "tight"
    return "does not fit"


def resident_together(needs: Mapping[str, int | None], gpu_bytes: int) -> list[tuple[str, ...]]:
    """The largest groups of routes (two or more) whose needs add up to a "fits" verdict.

    For policy "fit": these can stay loaded side by side. Maximal groups only (a group is
    left out when a larger listed group contains it); routes with unknown needs are left
    out. Exhaustive up to 14 known routes, greedy by size above that.
    """
    budget = TIGHT_FRACTION * gpu_bytes
    known = sorted((name for name, need in needs.items() if need is not None), key=lambda n: needs[n] or 0)
    sizes = {name: needs[name] or 0 for name in known}
    if len(known) > 14:
        group: list[str] = []
        for name in known:
            if sum(sizes[n] for n in group) + sizes[name] <= budget:
                group.append(name)
        return [tuple(group)] if len(group) >= 2 else []
    fitting = [
        set(combo)
        for size in range(len(known), 1, -1)
        for combo in combinations(known, size)
        if sum(sizes[n] for n in combo) <= budget
    ]
    maximal = [g for g in fitting if not any(g < other for other in fitting)]
    order = {name: i for i, name in enumerate(needs)}
    return [tuple(sorted(g, key=order.__getitem__)) for g in maximal]

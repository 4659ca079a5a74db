"""Do the resident routes leave room for the others? What `llmhost check` refuses.

A route with `resident = true` stays on the GPU (docs/lifecycle.md, "Resident routes"),
so every other route has to fit in what the resident ones leave. Each route's need comes
from its fixed size (`memory_gib`, or `gpu_memory_utilization` of the card, plus the
engine's own CUDA context) or else from the fit estimate (llmhost.estimate): for a route
sized "auto" that is the least it starts with (its weights, one sequence of KV cache and
the overhead), so a route refused here could never load beside the resident ones.

Pure: routes, estimates and the card's size in, lines and a refusal out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from llmhost.config import RouteConfig
from llmhost.estimate.figures import CUDA_CONTEXT_BYTES
from llmhost.estimate.result import RouteEstimate
from llmhost.units import GIB


@dataclass(frozen=True)
class Need:
    """What a route takes on the GPU, and where the figure comes from (or why unknown)."""

    bytes: int | None
    how: str


@dataclass(frozen=True)
class RoomReport:
    lines: list[str]  # what `llmhost check` prints
    refusal: str | None  # why the resident routes leave a route no room (None: they do not)


def route_need(route: RouteConfig, estimate: RouteEstimate | None, gpu_bytes: int) -> Need:
    """What `route` holds on a card of `gpu_bytes` at the least (an auto-sized engine may
    take more when it is free, but starts with this)."""
    context = estimate.context_bytes if estimate is not None else CUDA_CONTEXT_BYTES
    plus_context = f" + {context / GIB:.2f} GiB CUDA context"
    fixed = route.memory_bytes
    if fixed is not None:
        if route.runs_vllm:  # vLLM's budget leaves out its engine's own CUDA context
            return Need(fixed + context, f"memory_gib {fixed / GIB:g}{plus_context}")
        return Need(fixed, f"memory_gib {fixed / GIB:g}")
    if route.runs_vllm and "gpu_memory_utilization" in route.engine:
        share = float(route.engine["gpu_memory_utilization"])
        return Need(int(share * gpu_bytes) + context, f"gpu_memory_utilization {share:g}{plus_context}")
    if estimate is None or estimate.need_bytes is None:
        why = estimate.unknown_reason if estimate is not None else None
        return Need(None, why or "weights unknown")
    return Need(estimate.need_bytes, "estimate")


def room_for_others(
    routes: Iterable[RouteConfig],
    estimates: Mapping[str, RouteEstimate],
    gpu_bytes: int,
    gpu_label: str,
) -> RoomReport | None:
    """The resident routes' share of a card of `gpu_bytes` (named `gpu_label`) and the
    routes that would have no room beside them; None when no route is resident."""
    routes = list(routes)
    residents = [r for r in routes if r.resident]
    if not residents:
        return None
    needs = {r.name: route_need(r, estimates.get(r.name), gpu_bytes) for r in routes}
    counted = [r for r in residents if needs[r.name].bytes is not None]
    held = sum(needs[r.name].bytes or 0 for r in counted)
    left = gpu_bytes - held
    card = f"{gpu_bytes / GIB:.2f} GiB ({gpu_label})"
    parts = " + ".join(f"{r.name} {_gib(needs[r.name].bytes)} ({needs[r.name].how})" for r in counted)
    lines = [
        f"Resident routes (loaded at start, never evicted for another route): {parts or 'none known'}"
        f" = {_gib(held)} of {card}; {_gib(max(left, 0))} left for the others."
    ]
    for r in residents:
        if needs[r.name].bytes is None:
            lines.append(
                f"  {r.name}: need unknown ({needs[r.name].how}), not counted; "
                "set memory_gib on it for this check"
            )
    names = ", ".join(r.name for r in counted)
    if held > gpu_bytes:
        refusal = (
            f"the resident routes ({names}) need {_gib(held)} together, more than the {card} GPU: "
            "they cannot all stay loaded. Make fewer routes resident or give them less memory_gib."
        )
        return RoomReport(lines, refusal)
    short: list[str] = []
    for r in routes:
        need = needs[r.name]
        if r.resident:
            continue
        if need.bytes is None:
            lines.append(f"  {r.name}: need unknown ({need.how}), not checked against what is left")
        elif need.bytes > left:
            short.append(f"{r.name} needs {_gib(need.bytes)} ({need.how})")
    if not short:
        return RoomReport(lines, None)
    refusal = (
        f"the resident routes ({names}) take {_gib(held)} of the {card} GPU, leaving {_gib(left)}; "
        f"{'; '.join(short)}: {'it' if len(short) == 1 else 'they'} could never load beside them. "
        "Make fewer routes resident, give them "
        "less memory_gib, or give the others less (memory_gib, max_model_len)."
    )
    return RoomReport(lines, refusal)


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.2f} GiB"

"""How much GPU memory a vLLM engine may take, in GiB rather than as a fraction of the card.

vLLM sizes itself by `gpu_memory_utilization`, a fraction of the card's *total* memory,
and refuses to start when the free memory it sees after creating its own CUDA context
is below `total x utilization` (vllm/v1/worker/utils.py, `request_memory`). On a 16 GB
card under WSL2, where the Windows desktop holds 1-1.5 GB, a fixed 0.9 is refused and
0.85 is marginal. So the host works out the fraction at load time from what NVML says:

* `memory_gib = "auto"` (the default for llm routes): under `exclusive`, what is free
  once the policy has evicted what it must, minus a margin for the engine's own CUDA
  context (`[host] engine_margin_gib`); the KV cache gets the rest. Under `fit`, the
  route's estimated need (llmhost.estimate) less that margin, so other models can stay
  resident beside it.
* `memory_gib = 6.5`: that many GiB.
* `gpu_memory_utilization` set in `[engine]`: the user's value wins, untouched.
* No NVML: vLLM's own default applies.

A route with `resident = true` shares the GPU whatever the policy, so an auto-sized one
takes its estimate as under `fit`. Its memory counts as used when the others size
themselves: loaded, it is out of NVML's free reading already; not loaded (idle, unloaded,
failed), what it holds when loaded (`resident_hold_bytes`) is kept free under "auto", so
it comes back without evicting anything.

Pure functions of numbers: tested directly with fake readings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmhost.config import RouteConfig
from llmhost.gpu.monitor import GpuMemory
from llmhost.units import GIB

# vLLM's own default for gpu_memory_utilization.
VLLM_DEFAULT_UTILIZATION = 0.9


@dataclass(frozen=True)
class EngineBudget:
    """What to pass to vLLM as gpu_memory_utilization (None: leave it as configured)."""

    utilization: float | None
    bytes: int | None  # the budget in bytes, when the host chose it
    reason: str  # one phrase for the log and /stats
    error: str | None = None  # the engine cannot start within what is free


def engine_budget(
    route: RouteConfig,
    policy: str,
    gpu: GpuMemory | None,
    *,
    margin_bytes: int,
    estimate_bytes: int | None = None,
    reserve_bytes: int = 0,
) -> EngineBudget:
    """The memory budget for loading `route` now, given NVML's reading taken just before.

    `reserve_bytes` stays free under "auto" sizing: room for what engines that will sleep
    later keep on the GPU while asleep (docs/standby.md), so this engine can still wake
    beside them, and for resident routes not loaded now (`resident_hold_bytes`)."""
    if not route.runs_vllm:
        return EngineBudget(None, None, "not a vLLM engine")
    if "gpu_memory_utilization" in route.engine:
        share = float(route.engine["gpu_memory_utilization"])
        return EngineBudget(None, None, f"gpu_memory_utilization {share:g} from [engine]")
    if gpu is None:
        default = VLLM_DEFAULT_UTILIZATION
        return EngineBudget(None, None, f"no NVML: vLLM's default of {default:g} of the card")
    usable = gpu.free_bytes - margin_bytes
    fixed = route.memory_bytes
    if fixed is not None:
        budget, source = fixed, f"memory_gib {fixed / GIB:g}"
    elif (policy == "fit" or route.resident) and estimate_bytes is not None:
        # The estimate counts the engine's CUDA context, which vLLM's budget does not.
        budget = estimate_bytes - margin_bytes
        why = "resident" if route.resident else "fit"
        source = f"estimated need {estimate_bytes / GIB:.1f} GiB ({why})"
    else:
        budget = usable - reserve_bytes
        source = f"auto: {gpu.free_bytes / GIB:.2f} GiB free less {margin_bytes / GIB:g} GiB margin"
        if reserve_bytes:
            source += (
                f" and {reserve_bytes / GIB:.2f} GiB kept for asleep engines and resident ones not loaded"
            )
        if route.resident:
            source += " (resident, need not estimated: set memory_gib)"
    if usable <= 0:
        return EngineBudget(
            None,
            None,
            source,
            error=(
                f"only {gpu.free_bytes / GIB:.2f} GiB of {gpu.total_bytes / GIB:.2f} GiB GPU memory is free, "
                f"less than the engine's own CUDA context needs (about {margin_bytes / GIB:g} GiB, "
                "engine_margin_gib); other programs hold the rest"
            ),
        )
    if budget <= 0:
        return EngineBudget(None, None, source, error=f"nothing left for the engine ({source})")
    if budget > usable:
        return EngineBudget(
            None,
            budget,
            source,
            error=(
                f"needs {budget / GIB:.2f} GiB ({source}) but only {gpu.free_bytes / GIB:.2f} GiB "
                f"of {gpu.total_bytes / GIB:.2f} GiB is free and the engine's own CUDA context "
                f"needs about {margin_bytes / GIB:g} GiB (engine_margin_gib)"
            ),
        )
    # Round down: vLLM asks for ceil(total x utilization), which must not exceed the budget.
    utilization = math.floor(budget / gpu.total_bytes * 10_000) / 10_000
    return EngineBudget(utilization, budget, source)


def sized_route(route: RouteConfig, budget: EngineBudget) -> RouteConfig:
    """The route as the engine should see it: with the budget as gpu_memory_utilization."""
    if budget.utilization is None:
        return route
    engine = {**route.engine, "gpu_memory_utilization": budget.utilization}
    return route.model_copy(update={"engine": engine})


def need_bytes(
    route: RouteConfig,
    policy: str,
    total_bytes: int | None,
    *,
    measured_bytes: int | None,
    estimate_bytes: int | None,
) -> int | None:
    """GPU memory the eviction policy must make room for (None: unknown).

    Under `exclusive` an auto-sized engine takes whatever is free, so it has no fixed
    need: the policy frees the GPU and vLLM itself judges whether the model fits.
    """
    fixed = route.memory_bytes
    if fixed is not None:
        return fixed
    if route.runs_vllm and "gpu_memory_utilization" in route.engine:
        if total_bytes is None:
            return None
        return int(float(route.engine["gpu_memory_utilization"]) * total_bytes)
    if route.memory_is_auto:
        if policy != "fit" and not route.resident:
            return None
        return estimate_bytes if estimate_bytes is not None else measured_bytes
    # A diffusion pipeline: known once measured (a resident one is estimated before).
    return measured_bytes if measured_bytes is not None else estimate_bytes


def resident_hold_bytes(
    route: RouteConfig,
    total_bytes: int | None,
    *,
    margin_bytes: int,
    measured_bytes: int | None,
    estimate_bytes: int | None,
) -> int:
    """What a resident route holds on the GPU once loaded, to keep free for it while it is
    not (0: unknown): the larger of what its last load took and what it is expected to
    take (its fixed budget plus its engine's own CUDA context, the margin; else its
    estimate, which counts the context). Never less than `need_bytes` asks for it, so it
    comes back without evicting anything."""
    context = margin_bytes if route.runs_vllm else 0  # a pipeline shares the host's context
    expected = estimate_bytes
    if route.memory_bytes is not None:
        expected = route.memory_bytes + context
    elif route.runs_vllm and "gpu_memory_utilization" in route.engine:
        share = float(route.engine["gpu_memory_utilization"])
        expected = int(share * total_bytes) + context if total_bytes is not None else None
    return max(measured_bytes or 0, expected or 0)


def wants_estimate(route: RouteConfig, policy: str) -> bool:
    """Whether the host estimates `route`'s need at start-up and after reloads
    (llmhost.estimate): an auto-sized engine under `fit`, and a resident route whose
    memory is not fixed (its budget, and what the others leave free for it)."""
    if route.memory_bytes is not None or "gpu_memory_utilization" in route.engine:
        return False
    if route.resident:
        return True
    return policy == "fit" and route.runs_vllm and route.memory_is_auto

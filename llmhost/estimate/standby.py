"""Does warm standby fit this machine's RAM? Per standby route, `llmhost check` says.

A level-1 sleep copies the engine's weights to host RAM (vLLM's sleep mode offloads the
allocations tagged "weights"), so an asleep model holds about its weights on the GPU:
~8.2 GiB for an 8-bit 7B model, ~5.2 GiB at 4 bits. A level-2 sleep drops them (a wake
rereads them from disk) and holds none. The host lets asleep models hold at most
`[host] standby_ram_gib` together (default 40% of the RAM psutil sees; under WSL2 that is
the VM's memory, by default half of Windows' RAM), and a model that alone needs more is
shut down instead of put to sleep (llmhost.lifecycle.policy, `plan_standby`). So on a
32 GB PC under WSL2 the default budget is about 6.2 GiB: no 8-bit model can sleep at
level 1. This module tells the user before the first swap, with what to change.

Pure where it can be: `standby_ram` takes the estimates and the budget; `report` gathers
them (the estimate from the cache, psutil, /proc/version) for `llmhost check`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from llmhost.config import Catalog, RouteConfig
from llmhost.config.host import STANDBY_RAM_SHARE
from llmhost.estimate.result import RouteEstimate
from llmhost.settings import Settings
from llmhost.units import GIB

# psutil inside the WSL2 VM sees a little less than `.wslconfig` memory= (what the kernel
# keeps): about 0.3-0.5 GiB of a 16 GB VM. The suggested memory= allows 5% for it.
_VM_VISIBLE_SHARE = 0.95


@dataclass(frozen=True)
class StandbyRam:
    """One standby route against the RAM budget."""

    route: str
    level: int
    ram_bytes: int | None  # host RAM it holds asleep; None when its weights are unknown
    fits: bool | None  # None: unknown
    advice: str | None = None  # what to change when it does not fit, or why it is unknown


def standby_ram(
    routes: Iterable[RouteConfig],
    estimates: Mapping[str, RouteEstimate],
    budget_bytes: int,
    *,
    budget_is_auto: bool,
    total_ram_bytes: int,
    wsl: bool,
) -> list[StandbyRam]:
    """Per route with `standby = "sleep"`: whether its sleep level fits the budget alone."""
    verdicts = []
    for route in routes:
        if route.kind != "llm" or route.standby != "sleep":
            continue
        level = route.sleep_level
        if level == 2:
            verdicts.append(StandbyRam(route.name, 2, 0, True))
            continue
        est = estimates.get(route.name)
        weights = est.weights_bytes if est is not None else None
        if weights is None:
            why = (est.unknown_reason if est is not None else None) or "weights unknown"
            verdicts.append(StandbyRam(route.name, 1, None, None, f"unknown: {why}"))
            continue
        if weights <= budget_bytes:
            verdicts.append(StandbyRam(route.name, 1, weights, True))
            continue
        advice = _advice(route.name, weights, budget_is_auto, total_ram_bytes, wsl)
        verdicts.append(StandbyRam(route.name, 1, weights, False, advice))
    return verdicts


def wsl_memory_gb(ram_bytes: int) -> int:
    """The `.wslconfig` memory= (whole GB, which WSL reads as GiB) whose default budget,
    40% of what the VM shows, holds `ram_bytes`."""
    return math.ceil(ram_bytes / STANDBY_RAM_SHARE / _VM_VISIBLE_SHARE / GIB)


def _advice(name: str, ram: int, budget_is_auto: bool, total: int, wsl: bool) -> str:
    need = math.ceil(ram / GIB)
    options = [f"set sleep_level = 2 in [routes.{name}] (holds no weights; a wake rereads them from disk)"]
    if need <= 0.75 * total / GIB:
        # The machine has the RAM: the budget is only a setting away.
        options.append(f"set [host] standby_ram_gib = {need} (this machine has {total / GIB:.1f} GiB)")
    if wsl and budget_is_auto:
        gb = wsl_memory_gb(ram)
        options.append(
            f"give the WSL2 VM memory={gb}GB under [wsl2] in %UserProfile%\\.wslconfig, then run "
            f"`wsl --shutdown` (it has {total / GIB:.1f} GiB now; 40% of {gb} GB holds the weights)"
        )
    elif need > 0.75 * total / GIB:
        options.append("add RAM")
    return "; or ".join(options)


def render_standby_ram(verdicts: list[StandbyRam], budget_bytes: int, origin: str) -> str:
    lines = [f"Standby RAM: asleep models may hold {budget_bytes / GIB:.1f} GiB ({origin})."]
    width = max(len(v.route) for v in verdicts)
    for v in verdicts:
        held = "-" if v.ram_bytes is None else f"{v.ram_bytes / GIB:.2f} GiB"
        if v.fits is None:
            word = v.advice or "unknown"
        elif v.level == 2:
            word = "fits (level 2 keeps no weights in RAM)"
        elif v.fits:
            word = "fits"
        else:
            word = f"does not fit (it would be shut down instead of put to sleep): {v.advice}"
        lines.append(f"  {v.route.ljust(width)}  level {v.level}  {held:>9}  {word}")
    asleep = [v for v in verdicts if v.fits and v.ram_bytes]
    together = sum(v.ram_bytes or 0 for v in asleep)
    if len(asleep) >= 2 and together > budget_bytes:
        lines.append(
            f"  Asleep together they hold {together / GIB:.2f} GiB: the host keeps as many asleep as "
            "fit, shutting the least recently used down first."
        )
    return "\n".join(lines)


def is_wsl(proc_version: Path = Path("/proc/version")) -> bool:
    """Running inside WSL (its kernel names Microsoft)."""
    try:
        return "microsoft" in proc_version.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return False


def report(catalog: Catalog, settings: Settings, *, online: bool = False) -> str | None:
    """`llmhost check`'s standby RAM section, or None when no route asks for standby.
    Weights from the cache `llmhost serve` uses (or, with `online`, the Hub)."""
    wanting = [r for r in catalog.routes.values() if r.kind == "llm" and r.standby == "sleep"]
    if not wanting:
        return None
    import psutil

    from llmhost.estimate import estimate_route

    if online:
        settings.export_hub_token()
    # The cache `llmhost serve` reads, resolved now (huggingface_hub's own default is
    # fixed when it is first imported, so it may name another cache).
    cache = settings.weights_cache().serve_hub
    estimates = {
        r.name: estimate_route(r, cache_dir=cache, online=online) for r in wanting if r.sleep_level == 1
    }
    host = catalog.host
    budget = host.standby_ram_bytes
    auto = host.standby_ram_gib is None
    total = int(psutil.virtual_memory().total)
    wsl = is_wsl()
    verdicts = standby_ram(wanting, estimates, budget, budget_is_auto=auto, total_ram_bytes=total, wsl=wsl)
    where = "the WSL2 VM's" if wsl else "this machine's"
    origin = f"40% of {where} {total / GIB:.1f} GiB of RAM" if auto else "[host] standby_ram_gib"
    return render_standby_ram(verdicts, budget, origin)

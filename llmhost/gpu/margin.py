"""The GPU memory each load leaves beside an engine's budget: configured, measured or default.

vLLM checks, right after creating its engine's CUDA context, that the free memory still
covers its budget (`total x gpu_memory_utilization`; vllm/v1/worker/utils.py,
`request_memory`). Whatever the engine holds outside that budget (its CUDA context, and
any overshoot of its own estimates) plus what the desktop takes while the engine starts
must fit in the margin the host leaves free when it sizes the budget
(llmhost.lifecycle.sizing). docs/gpu.md has the arithmetic.

The margin in use, in order:

* `[host] engine_margin_gib` when models.toml sets it: the user's figure wins;
* measured: at each load with NVML, the host records what the engine took beyond its
  budget (free memory before the load less free memory after, less the budget); the
  largest seen on this GPU, plus `ROOM` for the desktop growing meanwhile, sizes the next
  loads. It is kept in a small JSON file with the host's cache, so it survives restarts;
* else `DEFAULT_MARGIN_GIB`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmhost.config import HostConfig, RouteConfig
from llmhost.units import GIB

if TYPE_CHECKING:
    from llmhost.settings import WeightsCache

log = logging.getLogger("llmhost.margin")

# The default: the engine's CUDA context measured at 0.73 GiB on an RTX 4080 under WSL2,
# plus about a quarter GiB for the desktop growing during the 20-40 s an engine starts.
DEFAULT_MARGIN_GIB = 1.0
# What a measured margin gets on top of the largest overshoot seen: the desktop's growth.
ROOM_BYTES = GIB // 4
# A reading beyond this is not an engine's overshoot (another program started or quit
# during the load): ignored. The same bound as engine_margin_gib's.
MAX_BEYOND_BYTES = 8 * GIB
FILE_NAME = "engine-margin.json"


@dataclass(frozen=True)
class Measured:
    """The largest overshoot seen on one GPU: bytes beyond the budget, when, which route."""

    beyond_bytes: int
    date: str  # YYYY-MM-DD, local time
    route: str


@dataclass(frozen=True)
class Margin:
    bytes: int
    source: str  # "configured", "measured" or "default"
    detail: str  # one phrase for the log, /stats and `llmhost check`

    def stats(self, measured: Measured | None) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "source": self.source,
            "detail": self.detail,
            "measured_beyond_budget_bytes": measured.beyond_bytes if measured else None,
            "measured_on": measured.date if measured else None,
        }


class EngineMargins:
    """The margin in use for a GPU, and the overshoots measured on it (kept in `file`;
    None: in memory only, as in the lifecycle's unit tests)."""

    def __init__(self, file: Path | None = None, *, today: Callable[[], str] | None = None) -> None:
        self.file = file
        self._today = today if today is not None else lambda: time.strftime("%Y-%m-%d")
        self._measured: dict[str, Measured] = _read(file) if file is not None else {}
        self._save_failed = False

    def measured(self, gpu_name: str | None) -> Measured | None:
        """The largest overshoot seen on `gpu_name` (None: the largest on any GPU)."""
        if gpu_name is not None:
            return self._measured.get(gpu_name)
        return max(self._measured.values(), key=lambda m: m.beyond_bytes, default=None)

    def in_use(self, host: HostConfig, gpu_name: str | None) -> Margin:
        if host.engine_margin_gib is not None:
            gib = host.engine_margin_gib
            return Margin(int(gib * GIB), "configured", f"{gib:g} GiB (engine_margin_gib in models.toml)")
        measured = self.measured(gpu_name)
        if measured is not None:
            # Up to the next 0.01 GiB: the figure the log and /stats print is the one used.
            total = int(math.ceil((measured.beyond_bytes + ROOM_BYTES) * 100 / GIB) * GIB / 100)
            return Margin(
                total,
                "measured",
                f"{total / GIB:.2f} GiB (measured on {measured.date}: {measured.route}'s engine took "
                f"{measured.beyond_bytes / GIB:.2f} GiB beyond its budget, "
                f"plus {ROOM_BYTES / GIB:g} GiB room)",
            )
        return Margin(
            int(DEFAULT_MARGIN_GIB * GIB),
            "default",
            f"{DEFAULT_MARGIN_GIB:g} GiB (default; no load measured on this GPU yet)",
        )

    def stats(self, host: HostConfig, gpu_name: str | None) -> dict[str, Any]:
        return self.in_use(host, gpu_name).stats(self.measured(gpu_name))

    def observe(
        self,
        route: RouteConfig,
        gpu_name: str | None,
        measured_bytes: int | None,
        budget_bytes: int | None,
    ) -> Measured | None:
        """Record what a load took beyond its budget (`measured_bytes`: the drop in free
        memory across it); the new record when it is the largest seen on this GPU.

        Only for an engine the host sized (a budget) and that keeps to its budget: with
        `kv_cache_memory_bytes` vLLM sizes its KV cache by that and ignores the budget."""
        if gpu_name is None or measured_bytes is None or budget_bytes is None:
            return None
        if not route.runs_vllm or "kv_cache_memory_bytes" in route.engine:
            return None
        beyond = measured_bytes - budget_bytes
        if not 0 <= beyond <= MAX_BEYOND_BYTES:
            log.info(
                "%s took %.2f GiB against a budget of %.2f GiB: not an engine's overshoot, not recorded",
                route.primary_id,
                measured_bytes / GIB,
                budget_bytes / GIB,
            )
            return None
        known = self._measured.get(gpu_name)
        if known is not None and known.beyond_bytes >= beyond:
            return None
        record = Measured(beyond, self._today(), route.name)
        self._measured[gpu_name] = record
        log.info(
            "%s's engine took %.2f GiB beyond its budget, the most seen on %s: the engine margin "
            "is that plus %g GiB from now on (unless engine_margin_gib is set)",
            route.primary_id,
            beyond / GIB,
            gpu_name,
            ROOM_BYTES / GIB,
        )
        self._save()
        return record

    def _save(self) -> None:
        if self.file is None:
            return
        data = {
            "version": 1,
            "gpus": {
                name: {"beyond_budget_bytes": m.beyond_bytes, "measured_on": m.date, "route": m.route}
                for name, m in self._measured.items()
            },
        }
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.file.with_suffix(".tmp")
            partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            partial.replace(self.file)  # atomic: a reader never sees half a file
        except OSError as exc:
            if not self._save_failed:  # said once: the margin still applies while the host runs
                log.warning("cannot keep the measured engine margin in %s: %s", self.file, exc)
            self._save_failed = True


def _read(file: Path) -> dict[str, Measured]:
    """The records in `file`; none when it is missing or unreadable (a broken file is
    measured anew rather than trusted)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        gpus = data["gpus"]
        return {
            str(name): Measured(int(m["beyond_budget_bytes"]), str(m["measured_on"]), str(m["route"]))
            for name, m in gpus.items()
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring the measured engine margins in %s: %s", file, exc)
        return {}


def margin_file(cache: WeightsCache) -> Path:
    """Where the measured margins live: with the host's cache (HF_HOME, as `serve`, `pull`
    and `check` resolve it: Settings.weights_cache), in a folder of llmhost's own. When
    this user can neither write there nor create it, the cache `serve` falls back to, else
    the user's own cache (XDG_CACHE_HOME, ~/.cache)."""
    for home in (cache.home, cache.fallback):
        if home is None:
            continue
        path = home / "llmhost" / FILE_NAME
        if path.is_file() or _creatable(path.parent):
            return path
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "llmhost" / FILE_NAME


def _creatable(folder: Path) -> bool:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)


def check_line(host: HostConfig, cache: WeightsCache) -> str:
    """`llmhost check`'s line: the margin the next load would use on the GPU NVML sees."""
    name = _gpu_name()
    margin = EngineMargins(margin_file(cache)).in_use(host, name)
    where = f" ({name})" if name else ""
    return f"Engine margin{where}: {margin.detail}; docs/gpu.md#the-engine-margin."


def _gpu_name() -> str | None:
    """The name NVML gives the GPU, quietly None without one (check runs anywhere)."""
    from llmhost.gpu.monitor import quiet_monitor

    with quiet_monitor() as monitor:
        return monitor.name

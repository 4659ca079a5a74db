"""The [host] and [search] tables: how the host schedules models, and the search modes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from llmhost.config.base import Frozen
from llmhost.units import GIB

# The default standby_ram_gib as a share of total RAM: the rest stays for the host,
# the engines' own processes, the desktop and the page cache that makes loads fast.
STANDBY_RAM_SHARE = 0.4


class HostConfig(Frozen):
    idle_seconds: float = Field(600, gt=0, description="unload a model this long after its last request")
    start_timeout_seconds: float = Field(
        300, gt=0, description="longest a load may take; then it is abandoned and its requests get 503"
    )
    max_wait_seconds: float | None = Field(
        None,
        gt=0,
        description="longest a request waits for its model, never cut while the model is loading "
        "or waking; default: the worst swap the settings allow (llmhost.lifecycle.bounds)",
    )
    policy: Literal["exclusive", "fit"] = "exclusive"
    prewarm: tuple[str, ...] = ()
    drain_timeout_seconds: float = Field(
        60, gt=0, description="longest an eviction waits for in-flight requests to finish"
    )
    max_hold_seconds: float = Field(
        30, ge=0, description="longest a resident model keeps taking new work while another waits"
    )
    max_waiting: int = Field(64, ge=1, description="requests that may wait per model; more get 503")
    max_in_flight: int = Field(
        256, ge=1, description="requests one model serves at once; more wait (vLLM batches them)"
    )
    retry_backoff_seconds: float = Field(
        10, ge=0, description="after a failed load, requests fail fast for this long"
    )
    vram_settle_seconds: float = Field(
        20, ge=0, description="longest to wait for freed GPU memory to show up after an unload"
    )
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    cors_origins: tuple[str, ...] = ()
    loading_feedback: bool = False
    engine_margin_gib: float | None = Field(
        None,
        ge=0,
        le=8,
        description=(
            "GPU memory left free beside an engine's budget (its CUDA context); "
            "default: measured on this machine, else 1.0 (llmhost.gpu.margin)"
        ),
    )
    standby_ram_gib: float | None = Field(
        None,
        gt=0,
        description="host RAM that asleep models may hold (level-1 weights); default: 40% of RAM",
    )

    @property
    def standby_ram_bytes(self) -> int:
        """The RAM budget for asleep models: the set figure, else a share of total RAM (under
        WSL2, psutil sees the VM's limit, which is what counts)."""
        if self.standby_ram_gib is not None:
            return int(self.standby_ram_gib * GIB)
        import psutil

        return int(psutil.virtual_memory().total * STANDBY_RAM_SHARE)


_MODE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class SearchConfig(Frozen):
    """[search]: the modes of /tools/searxng_search, and how mode "auto" picks one."""

    # Mode -> SearXNG engine names (as in SearXNG's settings.yml; searxng/settings.yml
    # enables exactly these).
    modes: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "general": ("duckduckgo", "brave", "wikipedia", "wikidata"),
            "code": ("github", "stackoverflow", "duckduckgo"),
            "research": ("arxiv", "semantic scholar", "duckduckgo"),
        }
    )
    # Mode "auto": the first mode here with a keyword contained in the model's name.
    auto: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "code": ("code", "coder", "deepseek-coder", "qwen-coder"),
            "research": ("research", "r1", "deepseek-r1"),
        }
    )
    default_mode: str = "general"  # "auto" when no keyword matches, or no model is given
    max_results: int = Field(5, ge=1, le=50, description="results per answer when a request sets none")
    timeout_seconds: float = Field(10, gt=0, le=120, description="longest wait for SearXNG; then 504")

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        for name, engines in self.modes.items():
            if name == "auto" or not _MODE_NAME.match(name):
                raise ValueError(f"mode name '{name}': lowercase letters, digits, '-', '_'; not 'auto'")
            if not engines or any(not e.strip() for e in engines):
                raise ValueError(f"mode '{name}' needs at least one SearXNG engine name")
        defined = ", ".join(self.modes)
        for name in self.auto:
            if name not in self.modes:
                raise ValueError(f"[search.auto] names mode '{name}', which [search.modes] lacks ({defined})")
        if self.default_mode not in self.modes:
            raise ValueError(f"default_mode '{self.default_mode}' is not in [search.modes] ({defined})")
        return self

    def mode_for(self, names: tuple[str, ...]) -> str:
        """The mode "auto" means for a model known by `names` (its id, then its route's model)."""
        for name in names:
            lowered = name.lower()
            for mode, keywords in self.auto.items():
                if any(keyword.lower() in lowered for keyword in keywords):
                    return mode
        return self.default_mode

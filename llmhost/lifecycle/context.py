"""What the scheduler's pass and the transitions it starts share: the host's settings,
every model's slot, the hardware, the clock, vLLM's answer on standby and the runner of
the one GPU operation. The scheduler owns it and replaces `host` at a reload and
`standby` when vLLM answers; everything else reads them here, as they are now."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llmhost.backends.base import BackendFactory
from llmhost.config import HostConfig, RouteConfig
from llmhost.gpu.margin import EngineMargins
from llmhost.gpu.monitor import GpuMonitor
from llmhost.lifecycle.clock import Clock
from llmhost.lifecycle.runner import Runner
from llmhost.lifecycle.slot import Slot
from llmhost.lifecycle.standby import StandbyPlatform

# Why a route's model cannot be found (llmhost.preflight.model.problem), None when it may load.
Preflight = Callable[[RouteConfig], "str | None"]


@dataclass(eq=False)
class Context:
    host: HostConfig  # replaced at a reload
    slots: dict[str, Slot]  # by route name; a removed route's slot leaves once it is stopped
    factory: BackendFactory
    gpu: GpuMonitor
    clock: Clock
    margins: EngineMargins  # llmhost.gpu.margin
    runner: Runner  # the GPU operation in progress, and engines no model owns
    poke: Callable[[], None]  # run a pass soon
    route_changed: Callable[[], None]  # a reloaded route took its new settings
    preflight: Preflight | None = None
    standby: StandbyPlatform = field(default_factory=StandbyPlatform)  # set once vLLM answers
    # How long a request may wait for its model (llmhost.lifecycle.bounds); the manager
    # sets it from the catalog at start-up and at each reload.
    max_wait: float = float("inf")

    def margin_bytes(self) -> int:
        """The memory an engine uses beyond its budget, on this GPU (llmhost.gpu.margin)."""
        return self.margins.in_use(self.host, self.gpu.name).bytes

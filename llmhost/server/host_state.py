"""HostState: what the routers and the reload share, created once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from llmhost.config import Catalog
from llmhost.gpu.margin import EngineMargins
from llmhost.gpu.monitor import GpuMonitor
from llmhost.lifecycle.manager import ModelManager
from llmhost.server.auth import KeyCheck
from llmhost.server.preload import Preloader
from llmhost.settings import Settings


@dataclass
class HostState:
    """Everything the routers use, held on app.state.host."""

    settings: Settings
    manager: ModelManager
    gpu: GpuMonitor
    keys: KeyCheck
    started_at: float
    preload: Preloader
    margins: EngineMargins = field(default_factory=EngineMargins)  # the engine margin (llmhost.gpu.margin)

    @property
    def catalog(self) -> Catalog:
        """The routing table in force: the manager's, which a reload replaces (one copy)."""
        return self.manager.catalog


def host_state(request: Request) -> HostState:
    state: HostState = request.app.state.host
    return state

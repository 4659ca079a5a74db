"""Model backends by route kind. Each is imported only when a model of its kind loads,
so the host starts without importing vLLM, torch or diffusers."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the watchdog (python -m llmhost.backends.vllm.reaper) imports this package
    from llmhost.backends.base import Backend
    from llmhost.config import HostConfig, RouteConfig

# kind -> "module:Class"; a registry, not an if/elif over kinds.
REGISTRY: dict[str, str] = {
    "llm": "llmhost.backends.vllm.backend:VllmBackend",
    "diffusion": "llmhost.backends.diffusion.backend:DiffusionBackend",
    "embedding": "llmhost.backends.vllm.pooling:VllmPoolingBackend",
    "rerank": "llmhost.backends.vllm.pooling:VllmPoolingBackend",
}


def create_backend(route: RouteConfig, host: HostConfig) -> Backend:
    module_name, _, class_name = REGISTRY[route.kind].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    backend: Backend = cls(route, host)
    return backend


__all__ = ["REGISTRY", "create_backend"]

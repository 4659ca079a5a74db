"""What the vLLM backend's tests share: an llm route with the engine keys a test sets."""

from __future__ import annotations

from llmhost.config import RouteConfig


def coder_route(**engine: object) -> RouteConfig:
    """Route `coder` (served as coder-fast) with `engine` as its [engine] table."""
    return RouteConfig.model_validate(
        {
            "name": "coder",
            "kind": "llm",
            "model": "org/coder",
            "served_names": ["coder-fast"],
            "engine": engine,
        }
    )

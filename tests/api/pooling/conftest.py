"""Fixtures of the embeddings and rerank tests: the tiny pooling models and their routes."""

from __future__ import annotations

from typing import Any

import pytest

from llmhost.config.text import toml_table

# The tiny pooling models on vLLM's CPU backend (as llmhost.tiny_models.tiny_engine_args
# for the LLMs): float32 weights, no graph capture, a short context, a bounded KV cache.
POOLING_ENGINE: dict[str, Any] = {
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": 512,
    "kv_cache_memory_bytes": 16 * 1024 * 1024,
}


@pytest.fixture(scope="session")
def pooling_models() -> Any:
    from llmhost.tiny_models import ensure_tiny_pooling_models

    return ensure_tiny_pooling_models()


def pooling_route(name: str, kind: str, model: object, served: str, **engine: Any) -> str:
    """A [routes.NAME] table for a tiny pooling model, with engine arguments that run on CPU."""
    head = toml_table(f"routes.{name}", {"kind": kind, "model": str(model), "served_names": [served]})
    return "\n".join(head + toml_table(f"routes.{name}.engine", {**POOLING_ENGINE, **engine})) + "\n"

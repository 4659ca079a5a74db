"""Shared fixtures: the tiny real models, and environment hygiene for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Real engines run offline on CPU here; never reach for a model hub or send usage stats.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests must not pick up a developer's key or overrides from the environment."""
    for name in (
        "VLLM_API_KEY",
        "PREWARM_ROUTES",
        "IDLE_SECONDS",
        "START_TIMEOUT_SECONDS",
        "LLMHOST_CONFIG",
        "LLMHOST_HOST",
        "LLMHOST_PORT",
        "VISION_MODEL_ID",
        "VISION_MAX_EDGE",
    ):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture(scope="session")
def tiny_models():  # type: ignore[no-untyped-def]
    """The tiny random-weight models (built once, cached across runs)."""
    from llmhost.tiny_models import ensure_tiny_models

    return ensure_tiny_models()

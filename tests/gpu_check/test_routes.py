"""`scripts/gpu_check.py --routes` on an embedding route: loaded, measured with one request
of eight inputs, unloaded (llmhost.gpu_check.routes), on the tiny embedder's real engine."""

from __future__ import annotations

from typing import Any

import pytest

from llmhost.config import parse_catalog
from llmhost.gpu.monitor import NullMonitor
from llmhost.gpu_check.routes import check_catalog, render, run_checks
from llmhost.settings import Settings
from tests.api.pooling.conftest import pooling_route

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def pooling_models() -> Any:
    from llmhost.tiny_models import ensure_tiny_pooling_models

    return ensure_tiny_pooling_models()


async def test_an_embedding_route_is_loaded_measured_and_unloaded(pooling_models: Any) -> None:
    catalog = check_catalog(
        parse_catalog(pooling_route("embed", "embedding", pooling_models.embedder, "qwen3-embedding-tiny"))
    )
    gpu = NullMonitor("no GPU in tests")
    (result,) = await run_checks(Settings(_env_file=None), catalog, gpu)
    assert result.ok, result.error
    assert result.kind == "embedding" and result.load_seconds is not None and result.load_seconds > 0
    assert result.first_token_seconds is not None and result.first_token_seconds > 0
    assert result.cold_start_phases  # vLLM's own figures of the pooling engine's start
    assert render([result], gpu).splitlines()[-1].startswith("  embed: ")

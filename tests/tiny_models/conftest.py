"""The tiny models the tests of llmhost.tiny_models share: built once for the package, into
a cache of its own, with the hub offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmhost.tiny_models import TinyModels, ensure_tiny_models


@pytest.fixture(scope="package", autouse=True)
def _offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("VLLM_NO_USAGE_STATS", "1")
        yield


@pytest.fixture(scope="package")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="package")
def tiny(cache_dir: Path) -> TinyModels:
    return ensure_tiny_models(cache_dir)


@pytest.fixture(scope="package")
def tokenizer(tiny: TinyModels) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny.llm)

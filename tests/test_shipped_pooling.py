"""The embedding and rerank routes models.toml ships commented out: uncommented, they are
valid, vLLM can pool their models, and their GPU need is what the comment beside them says
(`llmhost check --gpu-memory 16`), alone and beside the 4-bit chat route under "fit".

Their models' architectures and sizes: tests/estimate/test_pooling.py; the 4-bit Llama's:
tests/test_shipped_fit.py. A fake Hugging Face cache holds their config.json, Qwen3-Embedding's
modules.json and sparse weight files of the published sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmhost.config import Catalog, parse_catalog
from llmhost.estimate import TIGHT_FRACTION, estimate_route
from llmhost.preflight.pooling import problem
from llmhost.units import GIB
from tests.estimate.test_pooling import BGE_RERANKER, QWEN3_EMBEDDING
from tests.test_shipped_fit import CARD, NEW, snapshot

ROOT = Path(__file__).resolve().parent.parent
MARKER = "# ---- Embeddings and rerank"


def uncommented() -> str:
    """models.toml with the commented-out route tables after the marker turned on."""
    text = (ROOT / "models.toml").read_text()
    head, marker, tail = text.partition(MARKER)
    assert marker, "models.toml no longer has the embeddings and rerank section"
    lines = tail.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# [routes."))
    body = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines[start:]]
    return head + marker + "\n".join(lines[:start]) + "\n" + "\n".join(body) + "\n"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return parse_catalog(uncommented())


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    snapshot(
        root,
        "Qwen/Qwen3-Embedding-0.6B",
        None,
        {
            "config.json": json.dumps(QWEN3_EMBEDDING).encode(),
            "modules.json": b"[]",
            "model.safetensors": 1_191_553_024,
        },
    )
    snapshot(
        root,
        "BAAI/bge-reranker-v2-m3",
        None,
        {"config.json": json.dumps(BGE_RERANKER).encode(), "model.safetensors": 2_271_023_108},
    )
    llama = (NEW / "llama-3.1-8b-instruct-awq-int4" / "config.json").read_bytes()
    snapshot(
        root,
        "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",
        "261cc461c887d52db3ba7f11e98c10615a6ab3a7",
        {"config.json": llama, "model-1.safetensors": 4_680_000_000, "model-2.safetensors": 1_050_000_000},
    )
    return root


def test_the_commented_routes_are_valid(catalog: Catalog) -> None:
    embed, rerank = catalog.routes["embed"], catalog.routes["rerank"]
    assert (embed.kind, embed.model) == ("embedding", "Qwen/Qwen3-Embedding-0.6B")
    assert (rerank.kind, rerank.model) == ("rerank", "BAAI/bge-reranker-v2-m3")
    assert embed.engine["hf_overrides"] == {"is_matryoshka": True}
    assert all(r.auth_mode == "key" and r.engine["enforce_eager"] for r in (embed, rerank))


def test_vllm_can_pool_them(catalog: Catalog, hub: Path) -> None:
    assert problem(catalog.routes["embed"], cache_dir=hub) is None
    assert problem(catalog.routes["rerank"], cache_dir=hub) is None


def test_their_need_is_what_the_comment_says(catalog: Catalog, hub: Path) -> None:
    need = {
        name: estimate_route(catalog.routes[name], cache_dir=hub).need_bytes for name in ("embed", "rerank")
    }
    assert need["embed"] is not None and round(need["embed"] / GIB, 1) == 2.6
    assert need["rerank"] is not None and round(need["rerank"] / GIB, 1) == 1.7
    text = (ROOT / "models.toml").read_text()
    assert "= 2.6 GiB" in text and "= 1.7 GiB" in text


def test_beside_the_4bit_chat_under_fit(catalog: Catalog, hub: Path) -> None:
    chat = parse_catalog(
        "[routes.chat]\nkind = 'llm'\nmodel = 'hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4'\n"
        "[routes.chat.engine]\nrevision = '261cc461c887d52db3ba7f11e98c10615a6ab3a7'\n"
        "quantization = 'awq'\nmax_model_len = 16384\n"
    ).routes["chat"]
    chat_need = estimate_route(chat, cache_dir=hub).need_bytes
    assert chat_need is not None and round(chat_need / GIB, 1) == 9.2
    together = chat_need + sum(
        estimate_route(catalog.routes[n], cache_dir=hub).need_bytes or 0 for n in ("embed", "rerank")
    )
    assert round(together / GIB, 1) == 13.5
    assert together <= TIGHT_FRACTION * CARD  # "fits": 14.4 GiB of the 15.99 GiB card

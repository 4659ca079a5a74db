"""Embedding and rerank routes in models.toml: the kinds' rules, and `llmhost check` refusing
a model vLLM cannot pool for the route's kind, with the reason (llmhost.preflight.pooling).

The decision is tested against vLLM 0.32's own registry, read from its installed source,
with the architectures of published models; the whole path (config.json on disk, the
catalog, `llmhost check`) with the tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmhost.cli import main
from llmhost.config import ConfigError, parse_catalog
from llmhost.preflight.model import config_problems
from llmhost.preflight.pooling import pooling_problem
from llmhost.vllm_source.models import Architectures, architectures


@pytest.fixture(scope="module")
def archs() -> Architectures:
    found = architectures()
    if found is None:
        pytest.skip("vLLM's source is not installed here")
    return found


def route_toml(kind: str, model: object, engine: str = "", extra: str = "") -> str:
    table = f"[routes.r]\nkind = '{kind}'\nmodel = '{model}'\n{extra}\n"
    return table + (f"[routes.r.engine]\n{engine}\n" if engine else "")


# ---- the kinds in models.toml ----------------------------------------------------------


def test_pooling_routes_are_vllm_routes_with_their_engine_checked() -> None:
    catalog = parse_catalog(
        route_toml(
            "embedding",
            "Qwen/Qwen3-Embedding-0.6B",
            "max_model_len = '8k'\nhf_overrides = { is_matryoshka = true }",
        )
    )
    route = catalog.routes["r"]
    assert route.runs_vllm and route.pooling and route.memory_is_auto and route.auth_mode == "key"
    assert route.engine["max_model_len"] == 8000  # vLLM's reading of "8k", as for llm routes
    assert route.engine["hf_overrides"] == {"is_matryoshka": True}
    with pytest.raises(ConfigError, match="warp_speed: unknown key"):
        parse_catalog(route_toml("rerank", "BAAI/bge-reranker-v2-m3", "warp_speed = 9"))


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (route_toml("embedding", "m/e", "runner = 'generate'"), 'runner: kind = "embedding" runs'),
        (route_toml("rerank", "m/r", extra="standby = 'sleep'"), "a rerank route unloads"),
        (
            route_toml("embedding", "m/e") + "[routes.r.serving]\ntool_parser = 'hermes'\n",
            "tool_parser: for llm routes",
        ),
    ],
)
def test_pooling_routes_refuse_what_only_generation_uses(toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_catalog(toml)


# ---- what vLLM can pool, per kind (vLLM 0.32's registry, published architectures) -----------

BGE_M3 = {"architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta"}
QWEN3_EMBEDDING = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}
BGE_RERANKER = {
    "architectures": ["XLMRobertaForSequenceClassification"],
    "model_type": "xlm-roberta",
    "id2label": {"0": "LABEL_0"},
}
SENTIMENT = {**BGE_RERANKER, "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}}
QWEN3_RERANKER_SEQ_CLS = {"architectures": ["Qwen3ForSequenceClassification"], "num_labels": 1}


@pytest.mark.parametrize(
    ("kind", "config", "st", "engine", "expected"),
    [
        ("embedding", BGE_M3, True, {}, None),
        ("embedding", QWEN3_EMBEDDING, True, {}, None),  # its modules.json makes it an embedder
        ("embedding", QWEN3_EMBEDDING, False, {}, "generative language model"),  # a chat model
        ("embedding", QWEN3_EMBEDDING, False, {"convert": "embed"}, None),  # vLLM's escape hatch
        ("embedding", BGE_RERANKER, False, {}, 'serve it as kind = "rerank"'),
        ("embedding", {"architectures": ["NoSuchModelForCausalLM"]}, False, {}, "no implementation"),
        ("embedding", {"architectures": ["NoSuchModel"], "auto_map": {"AutoModel": "x.Y"}}, False, {}, None),
        ("embedding", {"architectures": ["BertForTokenClassification"]}, False, {}, "token classifier"),
        ("rerank", BGE_RERANKER, False, {}, None),
        ("rerank", QWEN3_RERANKER_SEQ_CLS, False, {}, None),  # converted by vLLM from Qwen3ForCausalLM
        ("rerank", SENTIMENT, False, {}, "has 2 labels"),
        ("rerank", BGE_M3, True, {}, None),  # a bi-encoder: vLLM scores by cosine similarity
        ("rerank", QWEN3_EMBEDDING, False, {}, "not a cross-encoder"),  # Qwen3-Reranker as published
        ("rerank", QWEN3_EMBEDDING, False, {"hf_overrides": {"is_original_qwen3_reranker": True}}, None),
    ],
)
def test_what_vllm_can_pool(
    archs: Architectures,
    kind: str,
    config: dict[str, Any],
    st: bool,
    engine: dict[str, Any],
    expected: str | None,
) -> None:
    found = pooling_problem(kind, config, st, engine, archs)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found


# ---- llmhost check, from the files on disk ---------------------------------------------


@pytest.fixture(scope="module")
def pooling_models() -> Any:
    from llmhost.tiny_models import ensure_tiny_pooling_models

    return ensure_tiny_pooling_models()


def test_tiny_pooling_models_pass_for_their_kind(archs: Architectures, pooling_models: Any) -> None:
    catalog = parse_catalog(
        route_toml("embedding", pooling_models.embedder).replace("routes.r", "routes.e")
        + route_toml("rerank", pooling_models.reranker)
    )
    assert config_problems(catalog) == []


def test_check_refuses_a_model_vllm_cannot_pool_with_the_reason(
    archs: Architectures,
    pooling_models: Any,
    tiny_models: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "models.toml"
    # The tiny chat model (a Qwen2ForCausalLM without sentence-transformers files) as an
    # embedder, and the cross-encoder as an embedder: both refused, each with its reason.
    config.write_text(
        route_toml("embedding", tiny_models.llm).replace("routes.r", "routes.chatty")
        + route_toml("embedding", pooling_models.reranker).replace("routes.r", "routes.crossed")
    )
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Qwen2ForCausalLM is a generative language model" in err and "(route 'chatty')" in err
    assert "serve it as kind = \"rerank\" (route 'crossed')" in err
    assert "Traceback" not in err

"""`check --gpu-memory` for embedding and rerank routes (llmhost.estimate.pooling): the
models suggested in models.toml, from their published architecture and weight sizes.

* Qwen/Qwen3-Embedding-0.6B: Qwen3ForCausalLM, 28 layers, hidden 1024, 16 query and 8 KV
  heads of 128, MLP 3072, vocabulary 151,669, tied embeddings, bf16 (its model card and
  config.json). 595,776,512 parameters computed from that architecture (the card: "0.6B"),
  so its model.safetensors holds 1,191,553,024 bytes of tensors.
* BAAI/bge-reranker-v2-m3: XLMRobertaForSequenceClassification, XLM-RoBERTa large (24
  layers, hidden 1024, MLP 4096, vocabulary 250,002, 8,194 positions, one label), float32
  on disk: 567,755,777 parameters (the card: 568M), 2,271,023,108 bytes of tensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmhost.config import parse_catalog
from llmhost.estimate import estimate_route
from llmhost.estimate.figures import CUDA_CONTEXT_BYTES, NON_TORCH_BYTES
from llmhost.units import GIB

QWEN3_EMBEDDING = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 32768,
    "vocab_size": 151669,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
}
BGE_RERANKER = {
    "architectures": ["XLMRobertaForSequenceClassification"],
    "model_type": "xlm-roberta",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "max_position_embeddings": 8194,
    "vocab_size": 250002,
    "type_vocab_size": 1,
    "id2label": {"0": "LABEL_0"},
    "torch_dtype": "float32",
}


def model_dir(root: Path, name: str, config: dict[str, Any], weight_bytes: int) -> Path:
    path = root / name
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    with (path / "model.safetensors").open("wb") as handle:  # sparse: no data, no disk
        handle.truncate(weight_bytes)
    return path


def estimate(kind: str, model: Path, engine: str) -> Any:
    catalog = parse_catalog(f"[routes.r]\nkind = '{kind}'\nmodel = '{model}'\n[routes.r.engine]\n{engine}\n")
    return estimate_route(catalog.routes["r"])


def test_decoder_embedder_keeps_a_kv_cache_and_no_sampler(tmp_path: Path) -> None:
    model = model_dir(tmp_path, "qwen3-embedding", QWEN3_EMBEDDING, 1_191_553_024)
    found = estimate("embedding", model, "max_model_len = 8192\nenforce_eager = true")
    assert found.weights_bytes == 1_191_553_024  # bf16 as stored
    # One 8,192-token input in whole blocks of 16, plus the null block: 2 x 28 x 8 x 128 x 2 bytes.
    assert found.kv_cache_bytes == (8192 // 16 + 1) * 16 * 2 * 28 * 8 * 128 * 2
    # Context, memory outside torch, one forward pass of 2,048 tokens; no logits (no sampler).
    assert found.overhead_bytes == CUDA_CONTEXT_BYTES + NON_TORCH_BYTES + 2048 * (4 * 1024 + 3 * 3072) * 2
    assert 2.5 * GIB < found.need_bytes < 2.7 * GIB  # what models.toml says beside the route


def test_encoder_reranker_has_no_kv_cache(tmp_path: Path) -> None:
    model = model_dir(tmp_path, "bge-reranker", BGE_RERANKER, 2_271_023_108)
    found = estimate("rerank", model, "max_model_len = 8192\nenforce_eager = true")
    assert found.weights_bytes == 2_271_023_108 // 2  # float32 on disk, float16 in vLLM
    assert found.kv_cache_bytes == 0  # XLM-RoBERTa attends with EncoderOnlyAttention
    assert found.precision == "fp16"
    assert 1.6 * GIB < found.need_bytes < 1.8 * GIB


def test_the_same_model_as_an_llm_route_counts_sampler_and_kv(tmp_path: Path) -> None:
    model = model_dir(tmp_path, "qwen3-embedding", QWEN3_EMBEDDING, 1_191_553_024)
    as_llm = estimate("llm", model, "max_model_len = 8192\nenforce_eager = true")
    as_embedder = estimate("embedding", model, "max_model_len = 8192\nenforce_eager = true")
    # The sampler's logits: 256 rows x 151,669 tokens x 20 bytes.
    assert as_llm.overhead_bytes - as_embedder.overhead_bytes == 256 * 151669 * 20


@pytest.mark.parametrize("kind", ["embedding", "rerank"])
def test_check_prints_the_estimate(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmhost.cli import main

    model = model_dir(tmp_path, "m", QWEN3_EMBEDDING if kind == "embedding" else BGE_RERANKER, 10**9)
    config = tmp_path / "models.toml"
    sentence_transformers = model / "modules.json"
    sentence_transformers.write_text("[]")  # an embedder, for llmhost check's pooling check
    config.write_text(
        f"[routes.r]\nkind = '{kind}'\nmodel = '{model}'\n[routes.r.engine]\nmax_model_len = 8192\n"
    )
    assert main(["check", "--config", str(config), "--gpu-memory", "16"]) == 0
    out = capsys.readouterr().out
    assert "fits" in out

"""Embedding and rerank routes: an LLM route's estimate, less what a pooling engine never
allocates (pure arithmetic over the LLM figures).

- **no sampler**: vLLM's profile run ends with a dummy pooler pass instead of the sampler
  (vllm/v1/worker/gpu_model_runner.py: `_dummy_pooler_run` when `is_pooling_model`), so
  the logits of `max_num_seqs` rows never exist.
- **no KV cache for encoder-only models**: BERT-style encoders (XLM-RoBERTa in bge-m3 and
  bge-reranker-v2-m3) attend with `EncoderOnlyAttention`, whose `get_kv_cache_spec` is None
  (vllm/model_executor/layers/attention/encoder_only_attention.py). Decoder-based
  embedders (Qwen3-Embedding) keep a KV cache like any LLM.

Weights are the LLM estimate's: vLLM's dtype "auto" loads a pooling model's float32
checkpoint at 16 bits as it does an LLM's, but float16 rather than bfloat16
(vllm/config/model.py, `_resolve_auto_dtype`: `is_pooling_model` prefers float16).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from llmhost.config import RouteConfig
from llmhost.estimate.checkpoint import text_config
from llmhost.estimate.files import Files
from llmhost.estimate.llm import estimate_llm, llm_overhead_bytes
from llmhost.estimate.result import RouteEstimate

# config.json model_type of the encoder-only families vLLM pools (bert.py, roberta via
# bert, bert_with_rope.py, modernbert.py): no KV cache.
ENCODER_ONLY_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "modernbert", "nomic_bert", "new", "gte"})


def encoder_only(config: Mapping[str, Any]) -> bool:
    return str(text_config(config).get("model_type", "")).lower() in ENCODER_ONLY_TYPES


def pooling_overhead_bytes(config: Mapping[str, Any], engine: Mapping[str, Any]) -> int:
    """The LLM overhead without the sampler's logits (a vocabulary of none)."""
    return llm_overhead_bytes({**text_config(config), "vocab_size": 0}, engine)


def estimate_pooling(route: RouteConfig, files: Files) -> RouteEstimate:
    estimate = estimate_llm(route, files)
    config = files.json("config.json")
    if config is None or estimate.overhead_bytes is None:
        return estimate
    kv = 0 if encoder_only(config) else estimate.kv_cache_bytes
    overhead = pooling_overhead_bytes(config, route.engine)
    precision = estimate.precision
    if precision == "bf16" and str(config.get("torch_dtype", "")).lower() in ("float32", "float", "fp32"):
        precision = "fp16"
    return dataclasses.replace(estimate, kv_cache_bytes=kv, overhead_bytes=overhead, precision=precision)

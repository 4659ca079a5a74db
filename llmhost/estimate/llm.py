"""LLM routes: config.json arithmetic (pure: dicts in, bytes out) and the estimate from files."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

from llmhost.config import RouteConfig
from llmhost.estimate import checkpoint, weights
from llmhost.estimate.checkpoint import DTYPE_BYTES, text_config
from llmhost.estimate.figures import (
    ACTIVATION_HIDDEN_FACTOR,
    ACTIVATION_INTERMEDIATE_FACTOR,
    CUDA_CONTEXT_BYTES,
    CUDA_GRAPH_BYTES,
    DEFAULT_BLOCK_SIZE,
    DEFAULT_MAX_NUM_BATCHED_TOKENS,
    DEFAULT_MAX_NUM_SEQS,
    NON_TORCH_BYTES,
    SAMPLER_BYTES_PER_LOGIT,
)
from llmhost.estimate.files import Directory, Files
from llmhost.estimate.result import RouteEstimate

# ---- config.json arithmetic (pure) --------------------------------------------------------


def load_dtype_bytes(config: Mapping[str, Any], engine: Mapping[str, Any]) -> int:
    """Bytes per element of the dtype vLLM runs the model in (llmhost.estimate.checkpoint)."""
    return checkpoint.load_dtype_bytes(engine)


def kv_dtype_bytes(config: Mapping[str, Any], engine: Mapping[str, Any]) -> int:
    """Bytes per KV element: kv_cache_dtype "auto" follows the model dtype; fp8* is 1 byte."""
    kv = str(engine.get("kv_cache_dtype", "auto")).lower()
    if kv.startswith("fp8"):
        return 1
    if kv in DTYPE_BYTES:
        return DTYPE_BYTES[kv]
    return load_dtype_bytes(config, engine)


def is_mla(config: Mapping[str, Any]) -> bool:
    """DeepSeek-V2/V3-style multi-head latent attention (vLLM: `is_deepseek_mla`)."""
    return text_config(config).get("kv_lora_rank") is not None and not os.environ.get("VLLM_MLA_DISABLE")


def kv_bytes_per_token(config: Mapping[str, Any], dtype_bytes: int) -> int:
    """KV cache bytes for one token across all layers.

    Standard attention: K and V per layer, per KV head: 2 x layers x kv_heads x head_dim.
    MLA: vLLM caches the compressed latent plus the decoupled RoPE key, one vector per
    token and layer shared by all heads: layers x (kv_lora_rank + qk_rope_head_dim).
    Read from vLLM 0.32: vllm/model_executor/layers/attention/mla_attention.py sets
    `head_size = kv_lora_rank + qk_rope_head_dim` and `get_kv_cache_spec` returns an
    `MLAAttentionSpec(num_kv_heads=1, head_size=...)`, whose `head_size_v` is 0
    (vllm/v1/kv_cache_interface.py: "MLA stores a single latent vector per state; there
    is no separate V"), so `page_size_bytes` = block_size x head_size x dtype bytes.
    """
    text = text_config(config)
    layers = int(text["num_hidden_layers"])
    if is_mla(config):
        return layers * (int(text["kv_lora_rank"]) + int(text.get("qk_rope_head_dim") or 0)) * dtype_bytes
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
    return 2 * layers * kv_heads * head_dim * dtype_bytes


# vllm/transformers_utils/model_arch_config_convertor.py, `derived_max_model_len_and_key`.
_MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
# vllm/config/model.py, `_get_and_verify_max_len`: these RoPE types leave
# max_position_embeddings already scaled; any other type's `factor` multiplies it.
_PRESCALED_ROPE = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")


def derived_max_model_len(config: Mapping[str, Any]) -> int | None:
    """The max_model_len vLLM derives from config.json when [engine] does not set one."""
    text = text_config(config)
    lengths = [int(text[k]) for k in _MAX_LEN_KEYS if isinstance(text.get(k), (int, float))]
    if not lengths:
        return None
    length = int(text["model_max_length"]) if text.get("model_max_length") else min(lengths)
    rope = text.get("rope_scaling") or text.get("rope_parameters")
    if isinstance(rope, Mapping):
        kind = rope.get("rope_type") or rope.get("type") or "default"
        factor = rope.get("factor")
        if kind not in _PRESCALED_ROPE and kind != "default" and factor:
            length = int(length * float(factor))
    return length


_SIZE = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT]?)")


def _tokens(value: Any) -> int | None:
    """An [engine] size as vLLM's CLI reads it (vllm/utils/argparse_utils.py,
    `human_readable_int`: "32k" = 32,000, "32K" = 32,768); None for "auto", -1 or junk."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    match = _SIZE.fullmatch(str(value).strip())
    if match is None:
        return None
    number, suffix = str(match.group(1)), str(match.group(2) or "")
    if suffix.islower():
        return int(float(number) * 1000 ** ("kmgt".index(suffix) + 1))
    if suffix and "." not in number:
        return int(number) * int(1024 ** ("KMGT".index(suffix) + 1))
    return int(number) if "." not in number else None


def max_model_len(config: Mapping[str, Any], engine: Mapping[str, Any]) -> int | None:
    """[engine] max_model_len, else (also for "auto", which vLLM fits to the memory it
    finds) the model's full context as vLLM derives it."""
    return _tokens(engine.get("max_model_len")) or derived_max_model_len(config)


def kv_cache_bytes(config: Mapping[str, Any], engine: Mapping[str, Any], tokens: int) -> int:
    """KV cache for one sequence of `tokens`, in whole blocks plus the pool's null block."""
    block = engine.get("block_size")
    block_size = block if isinstance(block, int) and block > 0 else DEFAULT_BLOCK_SIZE
    blocks = math.ceil(tokens / block_size) + 1
    return blocks * block_size * kv_bytes_per_token(config, kv_dtype_bytes(config, engine))


def _engine_int(engine: Mapping[str, Any], key: str, default: int) -> int:
    value = engine.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def activation_bytes(config: Mapping[str, Any], engine: Mapping[str, Any]) -> int:
    """The profile run's peak: one forward pass of max_num_batched_tokens, then the sampler."""
    text = text_config(config)
    hidden = int(text.get("hidden_size") or 0)
    intermediate = int(text.get("intermediate_size") or 4 * hidden)
    vocab = int(text.get("vocab_size") or 0)
    tokens = _engine_int(engine, "max_num_batched_tokens", DEFAULT_MAX_NUM_BATCHED_TOKENS)
    seqs = _engine_int(engine, "max_num_seqs", DEFAULT_MAX_NUM_SEQS)
    per_token = ACTIVATION_HIDDEN_FACTOR * hidden + ACTIVATION_INTERMEDIATE_FACTOR * intermediate
    forward = tokens * per_token * load_dtype_bytes(config, engine)
    sampler = seqs * vocab * SAMPLER_BYTES_PER_LOGIT
    return forward + sampler


def llm_overhead_bytes(config: Mapping[str, Any], engine: Mapping[str, Any]) -> int:
    graphs = 0 if engine.get("enforce_eager") else CUDA_GRAPH_BYTES
    return CUDA_CONTEXT_BYTES + graphs + NON_TORCH_BYTES + activation_bytes(config, engine)


# ---- LLM routes ---------------------------------------------------------------------------

_INDEX = "model.safetensors.index.json"


def _llm_weights(files: Files) -> int | None:
    index = files.json(_INDEX)
    total = (index or {}).get("metadata", {}).get("total_size") if index else None
    if isinstance(total, int) and total > 0:
        return total
    top = [size for name, size in files.sizes().items() if "/" not in name]
    return sum(top) if top else None


def estimate_llm(route: RouteConfig, files: Files) -> RouteEstimate:
    config = files.json("config.json")
    if config is None:
        return RouteEstimate(None, None, None, f"no config.json in {files.where}", source=files.where)
    engine = route.engine
    tokens = max_model_len(config, engine)
    try:
        kv = kv_cache_bytes(config, engine, tokens) if tokens else None
        overhead = llm_overhead_bytes(config, engine)
    except (KeyError, TypeError, ValueError) as exc:
        reason = f"config.json in {files.where} lacks what the estimate needs ({exc})"
        return RouteEstimate(None, None, None, reason, source=files.where)
    raw = _llm_weights(files)
    if raw is None:
        reason = f"no safetensors weights in {files.where}"
        if isinstance(files, Directory) and files.where.startswith("the cache"):
            reason = f"weights not in the cache: llmhost pull {route.name}"
        return RouteEstimate(None, kv, overhead, reason, tokens, source=files.where)
    form = weights.weight_form(config, engine)
    if form.problem is not None:
        return RouteEstimate(
            None, kv, overhead, form.problem, tokens, source=files.where, precision=form.precision
        )
    on_gpu = weights.gpu_weight_bytes(raw, config, engine)
    return RouteEstimate(on_gpu, kv, overhead, None, tokens, source=files.where, precision=form.precision)

"""What a checkpoint's config.json says about its weights: the dtype it is stored in and the
one vLLM loads it in, its quantization_config, and the linear layers a quantization touches
(dense Llama/Qwen2/Mistral-style decoders) against those it leaves alone.

Pure: config.json and [engine] dicts in, sizes out; llmhost.estimate.weights and
llmhost.estimate.online_quant build on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DTYPE_BYTES = {
    "float32": 4,
    "float": 4,
    "fp32": 4,
    "float16": 2,
    "half": 2,
    "fp16": 2,
    "bfloat16": 2,
    "bf16": 2,
}


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's part of a config (multimodal wrappers nest it)."""
    nested = config.get("text_config")
    return nested if isinstance(nested, Mapping) else config


def quantization_config(config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    found = config.get("quantization_config") or text_config(config).get("quantization_config")
    return found if isinstance(found, Mapping) else None


def checkpoint_dtype_bytes(config: Mapping[str, Any]) -> int:
    value = config.get("torch_dtype") or config.get("dtype") or text_config(config).get("torch_dtype")
    return DTYPE_BYTES.get(str(value or "bfloat16").lower(), 2)


def load_dtype_bytes(engine: Mapping[str, Any]) -> int:
    """Bytes per element of the dtype vLLM runs the model in: its dtype "auto" keeps a
    16-bit checkpoint's dtype and turns float32 into a 16-bit one on GPUs
    (vllm/config/model.py, `_get_and_verify_dtype`), so 2 unless [engine] dtype says float32."""
    return 4 if DTYPE_BYTES.get(str(engine.get("dtype", "auto")).lower()) == 4 else 2


# ---- the architecture's linear layers ------------------------------------------------------

_MOE_KEYS = ("num_experts", "n_routed_experts", "num_local_experts", "moe_intermediate_size")


def dense_linears(config: Mapping[str, Any]) -> list[tuple[int, int]] | None:
    """(in, out) of every linear layer in the decoder of a dense Llama/Qwen2/Mistral-style
    model, as the checkpoint stores them (q, k, v, o, gate, up, down per layer); None for
    other architectures (mixtures of experts, MLA), where only the file bytes are used."""
    text = text_config(config)
    if any(text.get(k) for k in _MOE_KEYS) or text.get("kv_lora_rank") is not None:
        return None
    try:
        hidden = int(text["hidden_size"])
        inter = int(text["intermediate_size"])
        layers = int(text["num_hidden_layers"])
        heads = int(text["num_attention_heads"])
    except (KeyError, TypeError, ValueError):
        return None
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    q, kv = heads * head_dim, kv_heads * head_dim
    per_layer = [
        (hidden, q),
        (hidden, kv),
        (hidden, kv),
        (q, hidden),
        (hidden, inter),
        (hidden, inter),
        (inter, hidden),
    ]
    return per_layer * layers


def unquantized_params(config: Mapping[str, Any]) -> int:
    """Parameters no linear-layer quantization touches: the token embeddings, `lm_head`
    (unless tied to them), the norms and Qwen2's q/k/v biases."""
    text = text_config(config)
    hidden = int(text.get("hidden_size") or 0)
    vocab = int(text.get("vocab_size") or 0)
    layers = int(text.get("num_hidden_layers") or 0)
    tied = bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False)))
    embeddings = vocab * hidden * (1 if tied else 2)
    norms = (2 * layers + 1) * hidden
    biases = 0
    if text.get("attention_bias") or str(text.get("model_type", "")).startswith("qwen2"):
        heads = int(text.get("num_attention_heads") or 1)
        kv_heads = int(text.get("num_key_value_heads") or heads)
        head_dim = int(text.get("head_dim") or hidden // heads)
        biases = layers * (heads + 2 * kv_heads) * head_dim
    return embeddings + norms + biases

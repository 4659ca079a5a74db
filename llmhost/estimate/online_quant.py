"""The weights of a 16-bit checkpoint that vLLM 0.32 quantizes as it loads (online
quantization): which method [engine] asks for, and the bytes it leaves on the GPU.

A 16-bit checkpoint with [engine] quantization = "fp8_per_channel" and the other
shorthands of vllm/config/quantization.py `_ONLINE_SHORTHANDS` ("fp8" is the deprecated
alias of "fp8_per_tensor"), or "online" with a quantization_config: linear layers are
created on the meta device and quantized one at a time as they load
(quantization/online/base.py, fp8.py), so the 16-bit checkpoint is never whole on the
GPU. Linear layers (and MoE experts) end at the method's bytes per weight plus scales;
embeddings, `lm_head` (a vocabulary embedding, not a linear layer), norms and biases stay
at the model dtype.

Pure: config.json and [engine] dicts in, bytes out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from llmhost.estimate.checkpoint import (
    checkpoint_dtype_bytes,
    dense_linears,
    load_dtype_bytes,
    quantization_config,
    text_config,
    unquantized_params,
)

# vLLM's online weight quantization keys (vllm/config/quantization.py, QUANT_KEY_NAMES and
# `_ONLINE_SHORTHANDS`) -> (bytes per weight, scale layout). Scales are fp32 (4 bytes) per
# tensor, per output channel or per 128 x 128 block; MX formats keep one 1-byte e8m0 scale
# per 32 weights.
_ONLINE_KEYS: dict[str, tuple[float, str]] = {
    "kFp8StaticTensorSym": (1, "tensor"),
    "kFp8DynamicTensorSym": (1, "tensor"),
    "kFp8StaticChannelSym": (1, "channel"),
    "kFp8Static128BlockSym": (1, "block"),
    "kFp8Dynamic128Sym": (1, "block"),
    "kMxfp8Dynamic": (1, "mx"),
    "kMxfp4Static": (0.5, "mx"),
    "kMxfp4Dynamic": (0.5, "mx"),
}
_KEY_NAMES = {  # QUANT_KEY_NAMES: the names [engine] quantization_config.linear may use
    "fp8_per_tensor_static": "kFp8StaticTensorSym",
    "fp8_per_tensor_dynamic": "kFp8DynamicTensorSym",
    "fp8_per_channel_static": "kFp8StaticChannelSym",
    "fp8_per_block_static": "kFp8Static128BlockSym",
    "fp8_per_block_dynamic": "kFp8Dynamic128Sym",
    "mxfp8": "kMxfp8Dynamic",
    "mxfp4": "kMxfp4Dynamic",
}
# vLLM 0.32's `_ONLINE_SHORTHANDS` (llmhost.vllm_source.online_quantization reads them
# from the installed source; tests hold this table to it). None: linear layers stay
# unquantized (the MoE-only shorthands).
ONLINE_SHORTHANDS: dict[str, str | None] = {
    "fp8_per_tensor": "kFp8StaticTensorSym",
    "fp8_per_block": "kFp8Static128BlockSym",
    "fp8_per_channel": "kFp8StaticChannelSym",
    "mxfp8": "kMxfp8Dynamic",
    "mxfp4": "kMxfp4Static",
    "int8_per_channel_weight_only": None,
    "nvfp4_per_token": None,
}
# "fp8" on a checkpoint without quantization metadata: the deprecated alias of
# fp8_per_tensor (vllm/model_executor/model_loader/weight_utils.py).
_ALIASES = {"fp8": "fp8_per_tensor"}


def online_method(config: Mapping[str, Any], engine: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(name, weight key for linear layers) of the online quantization [engine] asks of a
    checkpoint that is not quantized itself; None when there is none."""
    if quantization_config(config):
        return None  # a pre-quantized checkpoint: the method names its own format
    method = str(engine.get("quantization") or "").lower()
    if method == "online":
        spec = engine.get("quantization_config")
        linear = spec.get("linear") if isinstance(spec, Mapping) else None
        if isinstance(linear, str):
            key = ONLINE_SHORTHANDS.get(linear) or _KEY_NAMES.get(linear)
            return f"online ({linear})", key
        return "online", None
    method = _ALIASES.get(method, method)
    if method in ONLINE_SHORTHANDS:
        return method, ONLINE_SHORTHANDS[method]
    return None


def _scale_bytes(layout: str, shapes: Sequence[tuple[int, int]]) -> int:
    if layout == "tensor":
        return 4 * len(shapes)
    if layout == "channel":
        return sum(4 * out for _, out in shapes)
    if layout == "block":
        return sum(4 * math.ceil(i / 128) * math.ceil(o / 128) for i, o in shapes)
    return sum(math.ceil(i / 32) * o for i, o in shapes)  # mx: one byte per 32 weights


def online_weight_bytes(
    file_bytes: int, config: Mapping[str, Any], engine: Mapping[str, Any], key: str
) -> int:
    """A 16-bit (or fp32) checkpoint quantized online: linear layers at the key's bytes per
    weight plus scales, everything else at the model dtype."""
    per_weight, layout = _ONLINE_KEYS.get(key, (2.0, "tensor"))
    stored = checkpoint_dtype_bytes(config)
    loaded = load_dtype_bytes(engine)
    total_params = file_bytes // stored
    kept = min(unquantized_params(config), total_params)
    linear_params = total_params - kept
    shapes = dense_linears(config)
    if shapes is None or sum(i * o for i, o in shapes) > linear_params:
        # Not a dense decoder (experts): scales as if every input were hidden_size wide.
        hidden = int(text_config(config).get("hidden_size") or 1)
        shapes = [(hidden, max(linear_params // hidden, 1))]
    return int(kept * loaded + linear_params * per_weight) + _scale_bytes(layout, shapes)

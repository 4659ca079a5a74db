"""The weights vLLM 0.32 holds on the GPU, by form: pre-quantized checkpoints (GPTQ, AWQ,
compressed-tensors, fp8), online quantization of a 16-bit checkpoint, or none.

Pure: config.json and [engine] dicts in, bytes and labels out. The checkpoint's file
bytes are the anchor (they are measured, not derived); the arithmetic here only says
what vLLM adds to or drops from them on the way to the GPU, read from its source:

* GPTQ (`quant_method = "gptq"`): vLLM 0.32 serves it with Marlin kernels
  (model_executor/layers/quantization/auto_gptq.py, `AutoGPTQLinearMethod`), W4A16 or
  W8A16 on any card from compute capability 7.5. It keeps `qweight` (bits/8 bytes per
  weight) and the fp16 `scales` (one per group of `group_size` inputs and output),
  drops every `g_idx` at load (`QuantizationConfig` maps ".g_idx" to None) and, for
  symmetric checkpoints, replaces `qzeros` with an empty tensor
  (kernels/linear/mixed_precision/marlin.py). It refuses `desc_act = true` with groups
  and asymmetric checkpoints (`normalize_and_validate_gptq_desc_act`, `TYPE_MAP`).
* compressed-tensors (llm-compressor: "FP8-dynamic", "quantized.w8a8", "w4a16"): weights
  as stored (1 byte each at 8 bits), their scales, and the layers of the config's
  `ignore` list (`lm_head`) and the embeddings unquantized, as in the files. FP8 W8A8
  runs on CUTLASS FP8 from capability 8.9 (RTX 40xx); below that vLLM serves the same
  checkpoint weight-only through FP8 Marlin (`CompressedTensorsW8A16Fp8`, from 7.5),
  so the weights on the GPU are the same. INT8 W8A8 runs on CUTLASS INT8 from 7.5.
* AWQ (4-bit only) and serialized fp8: as stored.
* online (a 16-bit checkpoint with [engine] quantization = "fp8_per_channel" and the
  other shorthands of vllm/config/quantization.py `_ONLINE_SHORTHANDS`; "fp8" is the
  deprecated alias of "fp8_per_tensor"): linear layers are created on the meta device
  and quantized one at a time as they load (quantization/online/base.py, fp8.py), so
  the 16-bit checkpoint is never whole on the GPU. Linear layers (and MoE experts) end
  at the method's bytes per weight plus scales; embeddings, `lm_head` (a vocabulary
  embedding, not a linear layer), norms and biases stay at the model dtype.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


# ---- online quantization ---------------------------------------------------------------------

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


# ---- pre-quantized checkpoints -----------------------------------------------------------------


def gptq_dropped_bytes(config: Mapping[str, Any]) -> int:
    """What vLLM's Marlin GPTQ path drops from a symmetric checkpoint at load: every g_idx
    (int32 per input) and qzeros (bits/8 bytes per group and output). 0 when the linear
    layers cannot be enumerated."""
    quant = quantization_config(config) or {}
    shapes = dense_linears(config)
    if shapes is None or not quant.get("sym", True):
        return 0
    bits = int(quant.get("bits") or 4)
    group = int(quant.get("group_size") or -1)
    dropped = 0
    for inputs, outputs in shapes:
        groups = 1 if group <= 0 else math.ceil(inputs / group)
        dropped += 4 * inputs + groups * outputs * bits // 8
    return dropped


def _ct_scheme(quant: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any] | None] | None:
    """The weights and input_activations of a compressed-tensors config's first group."""
    groups = quant.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        return None
    first = next(iter(groups.values()))
    if not isinstance(first, Mapping) or not isinstance(first.get("weights"), Mapping):
        return None
    acts = first.get("input_activations")
    return first["weights"], acts if isinstance(acts, Mapping) else None


@dataclass(frozen=True)
class WeightForm:
    """How a route's weights reach the GPU."""

    precision: str  # "int8 W8A16 (GPTQ)", "fp8 W8A8", "bf16", ...: for the check table
    problem: str | None = None  # why vLLM 0.32 refuses the checkpoint, when it does


def weight_form(config: Mapping[str, Any], engine: Mapping[str, Any]) -> WeightForm:
    quant = quantization_config(config)
    if quant is None:
        dtype = "fp32" if load_dtype_bytes(engine) == 4 else "bf16"
        if dtype == "bf16" and str(config.get("torch_dtype", "")).lower() in ("float16", "fp16", "half"):
            dtype = "fp16"
        online = online_method(config, engine)
        if online is None:
            return WeightForm(dtype)
        name, key = online
        if key is None:
            return WeightForm(f"{dtype} ({name}: linear layers unquantized)")
        kind = "fp4" if "fp4" in key.lower() else "fp8"
        return WeightForm(f"{kind} online ({name})")
    method = str(quant.get("quant_method", "")).lower()
    if method == "gptq":
        bits, sym = int(quant.get("bits") or 0), bool(quant.get("sym", True))
        group = int(quant.get("group_size") or -1)
        problem = None
        if (bits, sym) not in ((4, True), (8, True)):
            problem = (
                f"vLLM 0.32 serves GPTQ at 4 or 8 bits, symmetric only (this one: bits={bits}, sym={sym})"
            )
        elif quant.get("desc_act") and group != -1:
            problem = "vLLM 0.32 refuses GPTQ with desc_act = true and groups (activation reordering)"
        return WeightForm(f"int{bits} W{bits}A16 (GPTQ)", problem)
    if method in ("awq", "awq_marlin"):
        return WeightForm(f"int{int(quant.get('bits') or 4)} W4A16 (AWQ)")
    if method == "compressed-tensors":
        scheme = _ct_scheme(quant)
        if scheme is None:
            return WeightForm("compressed-tensors")
        weights, acts = scheme
        bits = int(weights.get("num_bits") or 0)
        kind = "fp" if weights.get("type") == "float" else "int"
        act = f"A{int(acts.get('num_bits') or 16)}" if acts else "A16"
        return WeightForm(f"{kind}{bits} W{bits}{act}")
    if "fp8" in method:
        return WeightForm("fp8 W8A8")
    return WeightForm(method or "quantized")


def gpu_weight_bytes(file_bytes: int, config: Mapping[str, Any], engine: Mapping[str, Any]) -> int:
    """The weights' bytes on the GPU once vLLM has loaded a checkpoint of `file_bytes`."""
    quant = quantization_config(config)
    if quant is not None:
        if str(quant.get("quant_method", "")).lower() == "gptq":
            return max(file_bytes - gptq_dropped_bytes(config), 0)
        return file_bytes  # AWQ, compressed-tensors, fp8: as stored (module docstring)
    online = online_method(config, engine)
    if online is not None and online[1] is not None:
        return online_weight_bytes(file_bytes, config, engine, online[1])
    return file_bytes * load_dtype_bytes(engine) // checkpoint_dtype_bytes(config)

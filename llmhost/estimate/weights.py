"""The weights vLLM 0.32 holds on the GPU, by form: pre-quantized checkpoints (GPTQ, AWQ,
compressed-tensors, fp8), online quantization of a 16-bit checkpoint, or none; which form a
route has, and its label for the check table.

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
* online (a 16-bit checkpoint that vLLM quantizes as it loads): llmhost.estimate.online_quant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmhost.estimate.checkpoint import (
    checkpoint_dtype_bytes,
    dense_linears,
    load_dtype_bytes,
    quantization_config,
)
from llmhost.estimate.online_quant import online_method, online_weight_bytes


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

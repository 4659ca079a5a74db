"""The weights vLLM 0.32 holds on the GPU for a pre-quantized checkpoint (llmhost.estimate.weights);
online quantization of a 16-bit one is in test_online_quant.py.

Architectures from tests/fixtures/ (the 8-bit ones in tests/fixtures/shipped/, whose
README says how each was assembled and checked). Every expected figure is derived here,
tensor by tensor, independently of llmhost.estimate, and cross-checked against a
published one:

* [gptq-files] Qwen/Qwen2.5-Coder-7B-Instruct-GPTQ-Int8 and Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8,
  file lists on the Hub: shards of 3.98 + 3.79 + 1.09 GB (8.86 GB).
* [fp8-files] RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8-dynamic at 0906e2c: 5 + 4.08 GB.
* vLLM 0.32's own code for what each form keeps on the GPU (llmhost/estimate/weights.py
  names the files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmhost.config import RouteConfig
from llmhost.estimate import estimate_route
from llmhost.estimate import weights as w
from llmhost.units import GIB
from tests.estimate.support import FIXTURES, SHIPPED, config, linears, model_dir, other_params

GB = 10**9


def route(model: Path, **engine: Any) -> RouteConfig:
    return RouteConfig.model_validate({"name": "r", "kind": "llm", "model": str(model), "engine": engine})


# ---- the checkpoint, tensor by tensor (independent of llmhost.estimate) ---------------------


def gptq_checkpoint(c: dict[str, Any]) -> tuple[int, int]:
    """AutoGPTQ at `bits` with groups, fp16: per linear qweight int32 [in*bits/32, out],
    qzeros int32 [in/g, out*bits/32], scales fp16 [in/g, out], g_idx int32 [in]; the rest
    fp16. Returns the checkpoint's bytes and what vLLM's Marlin path drops (g_idx, qzeros)."""
    q = c["quantization_config"]
    bits, g = q["bits"], q["group_size"]
    total = dropped = 0
    for i, o in linears(c):
        qweight, qzeros, scales, g_idx = i * o * bits // 8, (i // g) * o * bits // 8, (i // g) * o * 2, 4 * i
        total += qweight + qzeros + scales + g_idx
        dropped += qzeros + g_idx
    return total + 2 * other_params(c, qkv_bias=True), dropped


def fp8_dynamic_checkpoint(c: dict[str, Any], qkv_bias: bool) -> int:
    """llm-compressor FP8_DYNAMIC: per linear an fp8 weight [out, in] and a bf16 weight_scale
    [out, 1]; lm_head (ignored), embeddings, norms at bf16; activation scales are dynamic."""
    return sum(i * o + 2 * o for i, o in linears(c)) + 2 * other_params(c, qkv_bias)


# ---- GPTQ-Int8 ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["qwen2.5-coder-7b-instruct-gptq-int8", "qwen2.5-7b-instruct-gptq-int8"])
def test_gptq_int8_is_the_checkpoint_less_g_idx_and_zeros(name: str) -> None:
    c = config(SHIPPED / name)
    checkpoint, dropped = gptq_checkpoint(c)
    assert abs(checkpoint - 8.86 * GB) / (8.86 * GB) < 0.002  # [gptq-files]
    assert w.gpu_weight_bytes(checkpoint, c, {"quantization": "gptq"}) == checkpoint - dropped
    assert 50e6 < dropped < 60e6  # qzeros (1 byte per group of 128 and output) + g_idx
    form = w.weight_form(c, {"quantization": "gptq"})
    assert form.precision == "int8 W8A16 (GPTQ)" and form.problem is None


def test_gptq_forms_vllm_refuses_are_unknown_with_the_reason(tmp_path: Path) -> None:
    c = config(SHIPPED / "qwen2.5-7b-instruct-gptq-int8")
    reordered = {**c, "quantization_config": {**c["quantization_config"], "desc_act": True}}
    est = estimate_route(route(model_dir(tmp_path / "a", reordered, 8_860_000_000)))
    assert est.weights_bytes is None and est.need_bytes is None
    assert est.unknown_reason is not None and "desc_act" in est.unknown_reason
    asym = {**c, "quantization_config": {**c["quantization_config"], "sym": False}}
    problem = w.weight_form(asym, {}).problem
    assert problem is not None and "symmetric" in problem
    three = {**c, "quantization_config": {**c["quantization_config"], "bits": 3}}
    assert w.weight_form(three, {}).problem is not None


# ---- compressed-tensors W8A8 -------------------------------------------------------------------


def test_fp8_dynamic_is_as_stored_with_lm_head_and_embeddings_at_16_bits(tmp_path: Path) -> None:
    c = config(SHIPPED / "llama-3.1-8b-instruct-fp8-dynamic")
    assert c["quantization_config"]["ignore"] == ["lm_head"]
    checkpoint = fp8_dynamic_checkpoint(c, qkv_bias=False)
    assert abs(checkpoint - 9.08 * GB) / (9.08 * GB) < 0.002  # [fp8-files]
    # The 16-bit part: embeddings and lm_head, 2 x 128256 x 4096 x 2 bytes = 1.96 GiB.
    assert 2 * other_params(c, qkv_bias=False) > 1.95 * GIB
    llama = model_dir(tmp_path / "llama", c, checkpoint)
    est = estimate_route(route(llama, quantization="compressed-tensors"))
    assert est.weights_bytes == checkpoint and est.precision == "fp8 W8A8"


def test_int8_w8a8_is_as_stored(tmp_path: Path) -> None:
    """llm-compressor's W8A8 (INT8) scheme, as compressed-tensors writes it, on Qwen2.5-7B:
    int8 weights per channel, int8 activations per token, lm_head ignored."""
    ct = pytest.importorskip("compressed_tensors.quantization")
    scheme = ct.preset_name_to_scheme("W8A8", ["Linear"])
    quant = ct.QuantizationConfig(
        config_groups={"group_0": scheme}, ignore=["lm_head"], format="int-quantized"
    ).model_dump()
    c = {**config(FIXTURES / "qwen2.5-7b-instruct"), "quantization_config": quant}
    checkpoint = fp8_dynamic_checkpoint(c, qkv_bias=True)  # the same layout, int8 for fp8
    est = estimate_route(route(model_dir(tmp_path / "int8", c, checkpoint)))
    assert est.weights_bytes == checkpoint and est.precision == "int8 W8A8"
    assert abs(checkpoint - 8.71 * GB) / (8.71 * GB) < 0.005  # about half of the bf16 15.23 GB

"""The weights vLLM 0.32 holds on the GPU for every 8-bit form (llmhost.estimate.weights).

Architectures from tests/fixtures/ (the 8-bit ones in tests/fixtures/shipped/, whose
README says how each was assembled and checked). Every expected figure is derived here,
tensor by tensor, independently of llmhost.estimate, and cross-checked against a
published one:

* [gptq-files] Qwen/Qwen2.5-Coder-7B-Instruct-GPTQ-Int8 and Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8,
  file lists on the Hub: shards of 3.98 + 3.79 + 1.09 GB (8.86 GB).
* [fp8-files] RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8-dynamic at 0906e2c: 5 + 4.08 GB.
* [qwen-index] Qwen/Qwen2.5-7B-Instruct (bf16): total_size 15,231,233,024.
* vLLM 0.32's own code for what each form keeps on the GPU (llmhost/estimate/weights.py
  names the files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmhost.config import RouteConfig
from llmhost.estimate import estimate_route, online_quant
from llmhost.estimate import weights as w
from llmhost.units import GIB
from llmhost.vllm_source import quantization as vllm_quantization

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SHIPPED = FIXTURES / "shipped"
GB = 10**9


def config(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path / "config.json").read_text())
    return data


def route(model: Path, **engine: Any) -> RouteConfig:
    return RouteConfig.model_validate({"name": "r", "kind": "llm", "model": str(model), "engine": engine})


def model_dir(root: Path, c: dict[str, Any], total_size: int) -> Path:
    """A model directory with its config.json and an index naming the weights' total."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(c))
    index = {"metadata": {"total_size": total_size}, "weight_map": {}}
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    with (root / "model-00001-of-00001.safetensors").open("wb") as handle:
        handle.truncate(1)  # a shard must exist; the index's total is what counts
    return root


# ---- the architecture, tensor by tensor (independent of llmhost.estimate) -------------------


def linears(c: dict[str, Any]) -> list[tuple[int, int]]:
    """(in, out) of q, k, v, o, gate, up, down in every decoder layer."""
    h, inter = c["hidden_size"], c["intermediate_size"]
    hd = c.get("head_dim") or h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    return [(h, q), (h, kv), (h, kv), (q, h), (h, inter), (h, inter), (inter, h)] * c["num_hidden_layers"]


def other_params(c: dict[str, Any], qkv_bias: bool) -> int:
    """Embeddings, lm_head, the two norms per layer and the final one, q/k/v biases."""
    h, layers = c["hidden_size"], c["num_hidden_layers"]
    hd = c.get("head_dim") or h // c["num_attention_heads"]
    bias = (c["num_attention_heads"] + 2 * c["num_key_value_heads"]) * hd if qkv_bias else 0
    return int(2 * c["vocab_size"] * h + layers * (2 * h + bias) + h)


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


# ---- vLLM's online shorthands -----------------------------------------------------------------


def test_the_online_table_is_vllms_own() -> None:
    installed = vllm_quantization.online_quantization()
    if installed is None:
        pytest.skip("vLLM's source is not installed here")
    assert online_quant.ONLINE_SHORTHANDS == installed
    # Every shorthand is also a quantization method vLLM accepts (QuantizationMethods).
    methods = vllm_quantization.quantization_methods()
    assert methods is not None and set(installed) | {"fp8", "online"} <= set(methods)


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


# ---- online quantization of the bf16 checkpoint --------------------------------------------------

QWEN_BF16 = 15_231_233_024  # [qwen-index]


def online_expected(c: dict[str, Any], scales: int) -> int:
    """Linear layers at 1 byte per weight plus `scales`; the rest stays bf16."""
    linear = sum(i * o for i, o in linears(c))
    assert 2 * (linear + other_params(c, qkv_bias=True)) == QWEN_BF16  # the index, to the byte
    return linear + 2 * other_params(c, qkv_bias=True) + scales


@pytest.mark.parametrize(
    ("method", "scale_bytes"),
    [
        ("fp8", lambda shapes: 4 * len(shapes)),  # the deprecated alias of fp8_per_tensor
        ("fp8_per_tensor", lambda shapes: 4 * len(shapes)),
        ("fp8_per_channel", lambda shapes: sum(4 * o for _, o in shapes)),
        ("fp8_per_block", lambda shapes: sum(4 * -(-i // 128) * -(-o // 128) for i, o in shapes)),
        ("mxfp8", lambda shapes: sum(-(-i // 32) * o for i, o in shapes)),
    ],
)
def test_every_online_fp8_method_on_the_bf16_checkpoint(
    tmp_path: Path, method: str, scale_bytes: Any
) -> None:
    c = config(FIXTURES / "qwen2.5-7b-instruct")
    expected = online_expected(c, scale_bytes(linears(c)))
    est = estimate_route(route(model_dir(tmp_path / method, c, QWEN_BF16), quantization=method))
    assert est.weights_bytes == expected
    assert est.precision == f"fp8 online ({'fp8_per_tensor' if method == 'fp8' else method})"
    # Not half the checkpoint: embeddings and lm_head (2 x 152064 x 3584) stay bf16, 1.0 GiB more.
    assert est.weights_bytes - QWEN_BF16 // 2 > 1.0 * GIB
    print(f"\n{method}: {est.weights_bytes / GIB:.2f} GiB on the GPU (bf16: {QWEN_BF16 / GIB:.2f} GiB)")


def test_online_through_quantization_config_and_the_moe_only_shorthands(tmp_path: Path) -> None:
    c = config(FIXTURES / "qwen2.5-7b-instruct")
    spec = {"linear": "fp8_per_channel"}
    by_spec = w.gpu_weight_bytes(QWEN_BF16, c, {"quantization": "online", "quantization_config": spec})
    assert by_spec == w.gpu_weight_bytes(QWEN_BF16, c, {"quantization": "fp8_per_channel"})
    # int8_per_channel_weight_only and nvfp4_per_token quantize MoE experts only: a dense
    # model keeps every weight at bf16.
    for method in ("int8_per_channel_weight_only", "nvfp4_per_token"):
        assert w.gpu_weight_bytes(QWEN_BF16, c, {"quantization": method}) == QWEN_BF16
        assert "linear layers unquantized" in w.weight_form(c, {"quantization": method}).precision
    # A pre-quantized checkpoint names its own method: no online arithmetic on top.
    gptq = config(SHIPPED / "qwen2.5-7b-instruct-gptq-int8")
    assert online_quant.online_method(gptq, {"quantization": "fp8_per_channel"}) is None


def test_unquantized_checkpoints_at_the_model_dtype() -> None:
    c = config(FIXTURES / "qwen2.5-7b-instruct")
    assert w.gpu_weight_bytes(QWEN_BF16, c, {}) == QWEN_BF16
    assert w.weight_form(c, {}).precision == "bf16"
    fp32 = {**c, "torch_dtype": "float32"}
    assert w.gpu_weight_bytes(2 * QWEN_BF16, fp32, {}) == QWEN_BF16  # dtype auto: 16-bit on a GPU
    assert w.gpu_weight_bytes(2 * QWEN_BF16, fp32, {"dtype": "float32"}) == 2 * QWEN_BF16
    assert w.weight_form(fp32, {"dtype": "float32"}).precision == "fp32"

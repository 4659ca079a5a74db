"""Online quantization of a 16-bit checkpoint (llmhost.estimate.online_quant): vLLM's
shorthands, and the weights each one leaves on the GPU, derived tensor by tensor from
Qwen/Qwen2.5-7B-Instruct's config (tests/estimate/support.py) and checked against its
index's total_size (15,231,233,024 bytes at bf16).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmhost.estimate import estimate_route, online_quant
from llmhost.estimate import weights as w
from llmhost.units import GIB
from llmhost.vllm_source import quantization as vllm_quantization
from tests.estimate.support import (
    FIXTURES,
    QWEN_BF16,
    SHIPPED,
    config,
    linears,
    model_dir,
    other_params,
    route,
)

# ---- vLLM's online shorthands -----------------------------------------------------------------


def test_the_online_table_is_vllms_own() -> None:
    installed = vllm_quantization.online_quantization()
    if installed is None:
        pytest.skip("vLLM's source is not installed here")
    assert online_quant.ONLINE_SHORTHANDS == installed
    # Every shorthand is also a quantization method vLLM accepts (QuantizationMethods).
    methods = vllm_quantization.quantization_methods()
    assert methods is not None and set(installed) | {"fp8", "online"} <= set(methods)


# ---- online quantization of the bf16 checkpoint --------------------------------------------------


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
    est = estimate_route(route("r", model_dir(tmp_path / method, c, QWEN_BF16), quantization=method))
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

"""What a checkpoint's config.json says of its weights (llmhost.estimate.checkpoint): the
dtype it is stored and loaded in, its linear layers and the parameters no quantization
touches, each against the architecture counted independently (tests/estimate/support.py).
"""

from __future__ import annotations

from llmhost.estimate import checkpoint
from llmhost.estimate import weights as w
from tests.estimate.support import DSV2, FIXTURES, QWEN, QWEN_BF16, config, linears, other_params


def test_unquantized_checkpoints_at_the_model_dtype() -> None:
    c = config(FIXTURES / "qwen2.5-7b-instruct")
    assert w.gpu_weight_bytes(QWEN_BF16, c, {}) == QWEN_BF16
    assert w.weight_form(c, {}).precision == "bf16"
    fp32 = {**c, "torch_dtype": "float32"}
    assert w.gpu_weight_bytes(2 * QWEN_BF16, fp32, {}) == QWEN_BF16  # dtype auto: 16-bit on a GPU
    assert w.gpu_weight_bytes(2 * QWEN_BF16, fp32, {"dtype": "float32"}) == 2 * QWEN_BF16
    assert w.weight_form(fp32, {"dtype": "float32"}).precision == "fp32"


def test_the_linear_layers_and_the_rest_are_the_architectures() -> None:
    c = config(QWEN)
    assert checkpoint.dense_linears(c) == linears(c)
    assert checkpoint.unquantized_params(c) == other_params(c, qkv_bias=True)
    # Both together are the whole bf16 checkpoint, to the byte.
    assert 2 * (sum(i * o for i, o in linears(c)) + checkpoint.unquantized_params(c)) == QWEN_BF16
    # A multimodal wrapper nests the language model's config: the same layers are found.
    assert checkpoint.dense_linears({"text_config": c}) == linears(c)
    # Mixtures of experts and MLA are not counted layer by layer: only the file bytes are used.
    assert checkpoint.dense_linears(config(DSV2)) is None

"""The quantization methods vLLM knows, read from its source (llmhost.vllm_source.quantization)."""

from __future__ import annotations

from llmhost import vllm_source
from tests.vllm_source.support import needs_vllm


@needs_vllm
def test_quantization_methods_include_awq_and_not_bitsandbytes() -> None:
    methods = vllm_source.quantization_methods()
    assert methods is not None
    assert {"awq", "gptq", "fp8", "compressed-tensors"} <= set(methods)
    assert "bitsandbytes" not in methods and "bnb" not in methods
    assert all(method == method.lower() for method in methods)  # vLLM compares lower-cased

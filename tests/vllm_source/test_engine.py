"""Engine keys (llmhost.vllm_source.engine): the fields of vLLM's AsyncEngineArgs, and the
check of a route's [engine] table against them."""

from __future__ import annotations

from llmhost import vllm_source
from tests.vllm_source.support import needs_vllm


@needs_vllm
def test_engine_keys_are_the_fields_of_async_engine_args() -> None:
    known = vllm_source.known()
    assert known is not None and {"max_model_len", "gpu_memory_utilization", "quantization"} <= known
    assert vllm_source.unknown(["max_modle_len", "max_model_len"]) == ["max_modle_len"]
    assert vllm_source.suggest("max_modle_len", known) == "max_model_len"


@needs_vllm
def test_check_engine_converts_sizes_and_names_problems() -> None:
    values, problems = vllm_source.check_engine(
        {"max_model_len": "32k", "gpu_memory_utilization": 1.5, "enforce_eager": "yes", "dtype": "half"}
    )
    assert values["max_model_len"] == 32000  # "32k" as vLLM's command line reads it
    assert [key for key, _ in problems] == ["gpu_memory_utilization", "enforce_eager"]
    assert "requires > 0 and ≤ 1" in problems[0][1]
    assert "expects true or false" in problems[1][1]

"""vllm_source: what is read from vLLM's installed source, checked directly.

tests/config/test_catalog.py checks these through models.toml's messages; here the lookups
themselves: quantization methods, engine field types and bounds, parser names.
"""

from __future__ import annotations

import pytest

from llmhost import vllm_source
from llmhost.vllm_source.engine import _accepts_field
from llmhost.vllm_source.field_types import ANY, Accepts

needs_vllm = pytest.mark.skipif(vllm_source.known() is None, reason="vLLM is not installed")


@needs_vllm
def test_quantization_methods_include_awq_and_not_bitsandbytes() -> None:
    methods = vllm_source.quantization_methods()
    assert methods is not None
    assert {"awq", "gptq", "fp8", "compressed-tensors"} <= set(methods)
    assert "bitsandbytes" not in methods and "bnb" not in methods
    assert all(method == method.lower() for method in methods)  # vLLM compares lower-cased


@needs_vllm
@pytest.mark.parametrize(
    ("key", "types"),
    [
        ("enforce_eager", {"bool"}),
        ("max_model_len", {"int"}),
        ("gpu_memory_utilization", {"float"}),
        ("max_num_seqs", {"int", "none"}),
    ],
)
def test_engine_field_types(key: str, types: set[str]) -> None:
    accepts = _accepts_field(key)
    assert accepts.types == types and not accepts.anything


@needs_vllm
def test_a_literal_field_lists_its_values() -> None:
    dtype = _accepts_field("dtype")
    assert {"auto", "half", "bfloat16"} <= set(dtype.literals)
    assert dtype.allows("half") and not dtype.allows("fp9") and not dtype.allows(16)


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


@needs_vllm
def test_parser_names() -> None:
    tools, reasoning = vllm_source.tool_parsers(), vllm_source.reasoning_parsers()
    assert tools is not None and {"hermes", "llama3_json", "mistral", "pythonic"} <= tools
    assert reasoning is not None and {"deepseek_r1", "qwen3"} <= reasoning
    assert vllm_source.parser_problem("tool", "hermes") is None
    assert vllm_source.parser_problem("reasoning", "deepseek_r1") is None
    problem = vllm_source.parser_problem("tool", "hermse")
    assert problem is not None and 'did you mean "hermes"?' in problem


def test_accepts_without_vllm() -> None:
    """The value checks themselves are plain Python."""
    number = Accepts(frozenset({"float"}))
    assert number.allows(1) and number.allows(0.5) and not number.allows(True) and not number.allows("1")
    flag = Accepts(frozenset({"bool"}))
    assert flag.allows(False) and not flag.allows(0)
    either = Accepts(literals=("auto",)) | Accepts(frozenset({"int"}))
    assert either.allows("auto") and either.allows(3) and not either.allows("other")
    assert either.describe() == 'an integer or one of "auto"'
    assert ANY.allows(object()) and ANY.describe() == "a value vLLM can read"

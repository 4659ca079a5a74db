"""What an engine field's annotation allows (llmhost.vllm_source.field_types): the types and
literals read from vLLM's source, and the value checks themselves, which are plain Python."""

from __future__ import annotations

import pytest

from llmhost.vllm_source.engine import _accepts_field
from llmhost.vllm_source.field_types import ANY, Accepts
from tests.vllm_source.support import needs_vllm


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

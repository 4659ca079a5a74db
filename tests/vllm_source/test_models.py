"""The architectures vLLM implements, by role (llmhost.vllm_source.models): read from its
model registry and its suffix defaults, and how a name resolves against them."""

from __future__ import annotations

import pytest

from llmhost.vllm_source import source
from llmhost.vllm_source.models import Architectures, architectures
from tests.vllm_source.support import needs_vllm

# A registry of four architectures and vLLM's suffix rules, in vLLM's order (the longer
# suffixes first, "Model" last): the lookups without vLLM's source.
SMALL = Architectures(
    generate=frozenset({"Qwen3ForCausalLM", "LlamaForCausalLM"}),
    embed=frozenset({"BertModel"}),
    classify=frozenset({"XLMRobertaForSequenceClassification"}),
    late_interaction=frozenset(),
    token_classify=frozenset(),
    suffixes=(
        ("ForCausalLM", "generate", "none"),
        ("ForSequenceClassification", "pooling", "classify"),
        ("Model", "pooling", "embed"),
    ),
)


def test_known_is_every_role_together() -> None:
    assert SMALL.known == {
        "Qwen3ForCausalLM",
        "LlamaForCausalLM",
        "BertModel",
        "XLMRobertaForSequenceClassification",
    }


def test_the_first_matching_suffix_gives_the_runner_and_conversion() -> None:
    assert SMALL.default("MistralForCausalLM") == ("generate", "none")
    assert SMALL.default("Qwen3ForSequenceClassification") == ("pooling", "classify")
    assert SMALL.default("GteModel") == ("pooling", "embed")
    assert SMALL.default("Florence2Processor") is None


def test_a_converted_architecture_resolves_through_its_base_model() -> None:
    assert SMALL.resolves("BertModel")  # registered as it is
    # Qwen3ForSequenceClassification: vLLM converts the registered Qwen3ForCausalLM.
    assert SMALL.resolves("Qwen3ForSequenceClassification")
    assert SMALL.resolves("LlamaModel")
    assert not SMALL.resolves("GemmaForSequenceClassification")  # no Gemma base registered
    assert not SMALL.resolves("Florence2Processor")  # no suffix vLLM knows


@needs_vllm
def test_the_installed_registry_by_role() -> None:
    archs = architectures()
    assert archs is not None
    assert {"Qwen2ForCausalLM", "LlamaForCausalLM", "DeepseekV2ForCausalLM"} <= archs.generate
    assert "BertModel" in archs.embed and "BertModel" not in archs.generate
    assert "XLMRobertaForSequenceClassification" in archs.classify
    assert archs.suffixes[0] == ("ForCausalLM", "generate", "none")
    assert archs.default("Qwen3ForSequenceClassification") == ("pooling", "classify")
    assert "Qwen3ForSequenceClassification" not in archs.known
    assert archs.resolves("Qwen3ForSequenceClassification")
    assert not archs.resolves("NoSuchForCausalLM")


def test_without_vllm_there_is_nothing_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    cached = (source._root, source.module_ast, architectures)
    for function in cached:
        function.cache_clear()
    monkeypatch.setattr(source, "_root", lambda: None)
    try:
        assert architectures() is None
    finally:
        monkeypatch.undo()
        for function in cached:
            function.cache_clear()

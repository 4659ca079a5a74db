"""Tool and reasoning parser names, read from vLLM's registration tables (llmhost.vllm_source.parsers)."""

from __future__ import annotations

from llmhost import vllm_source
from tests.vllm_source.support import needs_vllm


@needs_vllm
def test_parser_names() -> None:
    tools, reasoning = vllm_source.tool_parsers(), vllm_source.reasoning_parsers()
    assert tools is not None and {"hermes", "llama3_json", "mistral", "pythonic"} <= tools
    assert reasoning is not None and {"deepseek_r1", "qwen3"} <= reasoning
    assert vllm_source.parser_problem("tool", "hermes") is None
    assert vllm_source.parser_problem("reasoning", "deepseek_r1") is None
    problem = vllm_source.parser_problem("tool", "hermse")
    assert problem is not None and 'did you mean "hermes"?' in problem

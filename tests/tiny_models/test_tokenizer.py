"""The tiny tokenizer (llmhost.tiny_models.tokenizer): added tokens as single ids, a chat
template that renders tools, calls and results, and vLLM's parsers accepting it."""

from __future__ import annotations

import json
from typing import Any

from llmhost.tiny_models import EOS_TOKEN, NON_SPECIAL_TOKENS, PAD_TOKEN, SPECIAL_TOKENS, TinyModels

ALL_ADDED_TOKENS = (*SPECIAL_TOKENS, *NON_SPECIAL_TOKENS)

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_added_tokens_are_single_ids(tiny: TinyModels, tokenizer: Any) -> None:
    ids = {}
    for token in ALL_ADDED_TOKENS:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        assert len(encoded) == 1, (token, encoded)
        assert tokenizer.convert_ids_to_tokens(encoded[0]) == token
        ids[token] = encoded[0]
    assert len(set(ids.values())) == len(ALL_ADDED_TOKENS)

    assert tokenizer.eos_token == EOS_TOKEN
    assert tokenizer.pad_token == PAD_TOKEN
    generation = json.loads((tiny.llm / "generation_config.json").read_text())
    assert ids[EOS_TOKEN] in generation["eos_token_id"]

    # What vLLM's parsers rely on: <think>/<tool_call> survive default decoding.
    text = "".join(ALL_ADDED_TOKENS) + "x = 1"
    decoded = tokenizer.decode(tokenizer.encode(text), skip_special_tokens=True)
    assert decoded == "".join(NON_SPECIAL_TOKENS) + "x = 1"

    code = "def add(a, b):\n    return a + b\n"
    assert tokenizer.decode(tokenizer.encode(code)) == code
    assert len(tokenizer.encode(code)) < len(code), "BPE should merge common code pieces"


def test_chat_template_renders_tools_calls_and_results(tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    # As OpenAI clients send it: arguments as a JSON string.
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "21 C, cloudy"},
    ]
    text = tokenizer.apply_chat_template(
        messages, tools=[WEATHER_TOOL], add_generation_prompt=True, tokenize=False
    )
    assert text.startswith("<|im_start|>system\nAnswer briefly.\n\n# Tools\n")
    tools_block = text.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    assert json.loads(tools_block) == WEATHER_TOOL

    calls = [
        json.loads(chunk.split("</tool_call>", 1)[0])
        for chunk in text.split("<|im_start|>assistant\n", 1)[1].split("<tool_call>\n")[1:]
    ]
    assert calls == [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Rome"}},
    ]
    # Consecutive tool results share one user turn.
    assert (
        "<|im_start|>user\n<tool_response>\n18 C, sunny\n</tool_response>\n"
        "<tool_response>\n21 C, cloudy\n</tool_response><|im_end|>\n"
    ) in text
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")

    plain = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=False, tokenize=False
    )
    assert "<tools>" not in plain
    assert plain.endswith("<|im_start|>user\nhi<|im_end|>\n")

    ids = tokenizer.apply_chat_template(messages, tools=[WEATHER_TOOL], tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids("<tool_call>")) >= 3


def test_vllm_parsers_accept_the_tokenizer(tiny: TinyModels) -> None:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.reasoning import ReasoningParserManager
    from vllm.tokenizers import get_tokenizer
    from vllm.tool_parsers import ToolParserManager

    tokenizer = get_tokenizer(str(tiny.llm))
    request = ChatCompletionRequest(
        model="tiny", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL]
    )

    reasoning: Any = ReasoningParserManager.get_reasoning_parser("deepseek_r1")(tokenizer)
    assert reasoning.start_token_id == tokenizer.convert_tokens_to_ids("<think>")
    assert reasoning.end_token_id == tokenizer.convert_tokens_to_ids("</think>")
    output = tokenizer.decode(
        tokenizer.encode("<think>plan it</think>the answer<|im_end|>", add_special_tokens=False),
        skip_special_tokens=True,
    )
    assert reasoning.extract_reasoning(output, request) == ("plan it", "the answer")

    hermes = ToolParserManager.get_tool_parser("hermes")(tokenizer)
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    output = tokenizer.decode(tokenizer.encode(call, add_special_tokens=False))
    extracted = hermes.extract_tool_calls(output, request)
    assert extracted.tools_called
    assert [c.function.name for c in extracted.tool_calls] == ["get_weather"]
    assert json.loads(extracted.tool_calls[0].function.arguments) == {"city": "Paris"}

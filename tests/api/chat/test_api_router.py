"""The OpenAI-compatible API against real tiny vLLM engines, through the `openai` SDK.

One server for the module (policy "fit" with no NVML keeps every engine resident, so
each engine starts once); the exclusive swap is in tests/lifecycle/test_engines.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from llmhost.config import parse_catalog
from tests.apphelp import ServerThread, engine_table, make_app, running_requests, tiny_llm_route
from tests.hostproc import wait_until

__all__ = ["engine_table"]  # other test modules import it from here

pytestmark = pytest.mark.engine

TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "strict": True,
            "parameters": {
                "type": "object",
                # An enum keeps constrained decoding short even with random weights.
                "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]
FIM_PROMPT = "<|fim_prefix|>def add(a, b):\n    return <|fim_suffix|>\n<|fim_middle|>"


@pytest.fixture(scope="module")
def server(tiny_models: Any) -> Iterator[ServerThread]:
    catalog = parse_catalog(
        '[host]\npolicy = "fit"\n'
        + tiny_llm_route("coder", tiny_models.llm, "qwen2.5-coder-tiny")
        + tiny_llm_route("agent", tiny_models.llm, "agent-tools", serving='tool_parser = "hermes"')
        + tiny_llm_route(
            "general", tiny_models.llm_alt, "general-reasoner", serving='reasoning_parser = "deepseek_r1"'
        )
    )
    with ServerThread(make_app(catalog)) as srv:
        yield srv


def client(server: ServerThread, prefix: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}{prefix}", api_key="unused", max_retries=0, timeout=300)


def stats(server: ServerThread) -> dict[str, dict[str, Any]]:
    return {m["route"]: m for m in httpx.get(f"{server.url}/stats").json()["models"]}


def test_model_lists_answer_with_nothing_loaded(server: ServerThread) -> None:
    unified = client(server, "/openai/v1").models.list()
    per_route = client(server, "/coder/v1").models.list()
    assert {m.id for m in unified.data} == {"qwen2.5-coder-tiny", "agent-tools", "general-reasoner"}
    assert [m.id for m in per_route.data] == ["qwen2.5-coder-tiny"]
    assert all(s["loads"] == 0 and s["state"] == "stopped" for s in stats(server).values())


def test_chat_on_route_path_and_unified(server: ServerThread) -> None:
    for prefix, model in (("/coder/v1", "qwen2.5-coder-tiny"), ("/openai/v1", "coder"), ("/v1", "coder")):
        reply = client(server, prefix).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Say hi"}], max_tokens=8
        )
        assert reply.choices[0].message.role == "assistant"
        assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert stats(server)["coder"]["loads"] == 1  # three requests, one cold start


def test_streaming_chat_with_usage(server: ServerThread) -> None:
    stream = client(server, "/openai/v1").chat.completions.create(
        model="qwen2.5-coder-tiny",
        messages=[{"role": "user", "content": "Count to five"}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12
    assert stats(server)["coder"]["in_flight"] == 0  # the lease ended with the stream


def test_sse_framing_is_vllms(server: ServerThread) -> None:
    body = {
        "model": "coder",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "stream": True,
    }
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=120) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][6:])["object"] == "chat.completion.chunk"


def test_fim_completion_streamed_like_continue_autocomplete(server: ServerThread) -> None:
    for prefix in ("/coder/v1", "/v1"):
        stream = client(server, prefix).completions.create(
            model="qwen2.5-coder-tiny",
            prompt=FIM_PROMPT,
            max_tokens=10,
            temperature=0.01,
            stop=["\n\n"],
            stream=True,
        )
        chunks = list(stream)
        assert chunks and chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_named_tool_choice_returns_tool_calls(server: ServerThread) -> None:
    agent = client(server, "/agent/v1")
    choice = {"type": "function", "function": {"name": "get_weather"}}
    reply = agent.chat.completions.create(  # type: ignore[call-overload]
        model="agent-tools",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=TOOLS,
        tool_choice=choice,
        max_tokens=200,
    )
    calls = reply.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments)["city"] in ("Paris", "Oslo")

    stream = agent.chat.completions.create(  # type: ignore[call-overload]
        model="agent-tools",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=TOOLS,
        tool_choice=choice,
        max_tokens=200,
        stream=True,
    )
    names = [
        call.function.name
        for chunk in stream
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or []
        if call.function is not None and call.function.name
    ]
    assert names == ["get_weather"]


def test_continue_agent_mode_round_trip(server: ServerThread) -> None:
    """Tools, parallel_tool_calls false and a role "tool" message, as Continue sends them."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "What is the weather in Oslo?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 18 C"},
    ]
    stream = client(server, "/openai/v1").chat.completions.create(
        model="agent-tools",
        messages=messages,
        tools=TOOLS,
        parallel_tool_calls=False,
        max_tokens=16,
        stream=True,
    )
    finish = [c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason]
    assert finish and finish[-1] in ("stop", "length", "tool_calls")


def test_reasoning_comes_apart_from_the_answer(server: ServerThread) -> None:
    reply = client(server, "/general/v1").chat.completions.create(
        model="general-reasoner",
        messages=[{"role": "user", "content": "Think, then answer"}],
        max_tokens=16,
    )
    message = reply.choices[0].message.model_dump()
    # Random weights rarely close </think>: everything generated is reasoning then.
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    assert isinstance(reasoning, str) and reasoning
    assert message["content"] in (None, "") or reasoning not in message["content"]


def test_other_routes_model_on_route_path_is_404(server: ServerThread) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(server, "/coder/v1").chat.completions.create(
            model="agent-tools", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found"
    assert "/agent" in error["message"]


def test_invalid_request_is_400_before_any_load(server: ServerThread) -> None:
    response = httpx.post(
        f"{server.url}/v1/chat/completions", json={"model": "coder", "messages": "not a list"}, timeout=60
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_closing_a_stream_aborts_the_engine_request(server: ServerThread) -> None:
    body = {
        "model": "coder",
        "prompt": "Once upon a time",
        "max_tokens": 4000,
        "ignore_eos": True,
        "stream": True,
    }
    with httpx.stream("POST", f"{server.url}/coder/v1/completions", json=body, timeout=120) as r:
        received = 0
        for line in r.iter_lines():
            received += bool(line)
            if received >= 3:
                break
    manager = server.app.state.host.manager
    backend = manager.slots["coder"].backend
    # Polled: vLLM's abort of the request (in its output processor) announces nothing the
    # test can wait on from its own thread.
    wait_until(lambda: running_requests(backend) == 0 and stats(server)["coder"]["in_flight"] == 0, 30)
    assert running_requests(backend) == 0
    assert stats(server)["coder"]["in_flight"] == 0


def test_metrics_include_engine_series(server: ServerThread) -> None:
    text = httpx.get(f"{server.url}/metrics").text
    assert 'llmhost_model_loads_total{model="qwen2.5-coder-tiny",route="coder"} 1.0' in text
    assert "vllm:" in text


def test_metrics_of_every_resident_engine(server: ServerThread) -> None:
    """vLLM drops the previous engine's metrics when a new one starts; we keep them all."""
    for route, model in (
        ("coder", "qwen2.5-coder-tiny"),
        ("agent", "agent-tools"),
        ("general", "general-reasoner"),
    ):
        client(server, f"/{route}/v1").chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    text = httpx.get(f"{server.url}/metrics").text
    for model in ("qwen2.5-coder-tiny", "agent-tools", "general-reasoner"):
        assert f'model_name="{model}"' in text, model
    help_lines = [line for line in text.splitlines() if line.startswith("# HELP ")]
    assert len(help_lines) == len(set(help_lines))  # one family per name: valid exposition

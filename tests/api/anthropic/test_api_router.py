"""Anthropic's Messages API against a real tiny vLLM engine: the official `anthropic` SDK,
the raw SSE events, and Claude Code itself, headless.

One server and one engine for the module: the shipped /agent route's served name on the
tiny model, a tool parser, a key (Anthropic's clients send it as `x-api-key`), and the long
context Claude Code's first request needs (tests.api.agents.AGENT_CONTEXT).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import ToolParam

from llmhost.config import parse_catalog
from tests.api.agents import (
    AGENT_CONTEXT,
    CLAUDE_CODE,
    RecordRequests,
    Seen,
    agent_env,
    agent_route,
    installed,
)
from tests.apphelp import ServerThread, make_app, tiny_llm_route

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[3]
KEY = "sk-anthropic-test-0123"
AGENT = "agent-tools"  # the shipped /agent route's served name, as clients/claude-code uses it
TOOLS: list[ToolParam] = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        # vLLM constrains the arguments to the schema only for a strict tool: with random
        # weights that is what makes the call valid (an enum keeps it short).
        "strict": True,
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    }
]
HELLO: list[Any] = [{"role": "user", "content": "Say hello"}]


class Served:
    def __init__(self, server: ServerThread, seen: list[Seen]) -> None:
        self.server = server
        self.seen = seen  # every request, as tests.api.agents.RecordRequests saw it

    @property
    def url(self) -> str:
        return self.server.url

    def prompt_tokens(self) -> float:
        """vLLM's own count of prompt tokens the /agent engine has processed."""
        metrics = httpx.get(f"{self.url}/metrics", headers={"x-api-key": KEY}, timeout=30).text
        line = next(x for x in metrics.splitlines() if x.startswith("vllm:prompt_tokens_total{"))
        return float(line.rsplit(" ", 1)[1])


@pytest.fixture(scope="module")
def served(tiny_models: Any) -> Iterator[Served]:
    catalog = parse_catalog(
        '[host]\npolicy = "fit"\n'
        + agent_route("agent", tiny_models.llm, AGENT)
        # Declared, never loaded: the target of the wrong-route request.
        + tiny_llm_route("coder", tiny_models.llm, "coder-fast")
    )
    app = make_app(catalog, api_key=KEY)
    seen: list[Seen] = []
    app.add_middleware(RecordRequests, seen=seen)
    with ServerThread(app) as server:
        yield Served(server, seen)


def client(served: Served, prefix: str = "", *, key: str = KEY, bearer: bool = False) -> anthropic.Anthropic:
    """The SDK with the key as `x-api-key`, as Claude Code sends it (this SDK release sends its
    `api_key` as a bearer token: `bearer=True`)."""
    auth: dict[str, Any] = {"api_key": key} if bearer else {"default_headers": {"x-api-key": key}}
    return anthropic.Anthropic(base_url=f"{served.url}{prefix}", max_retries=0, timeout=300, **auth)


def test_plain_message_and_count_tokens(served: Served) -> None:
    reply = client(served).messages.create(model=AGENT, max_tokens=16, messages=HELLO)
    assert reply.type == "message" and reply.role == "assistant" and reply.model == AGENT
    assert reply.content and reply.content[0].type == "text"
    assert reply.stop_reason in ("end_turn", "max_tokens")
    assert 0 < reply.usage.output_tokens <= 16
    counted = client(served).messages.count_tokens(model=AGENT, messages=HELLO)
    assert counted.input_tokens == reply.usage.input_tokens  # the same rendering of the prompt
    sent = [s for s in served.seen if s.path == "/v1/messages"]
    assert sent[-1].headers["x-api-key"] == KEY and "authorization" not in sent[-1].headers


def test_streamed_message_has_anthropics_events(served: Served) -> None:
    with client(served).messages.stream(model=AGENT, max_tokens=12, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert final.usage.output_tokens > 0
    # On the wire: `event: <name>` before each `data:`, as Anthropic sends them.
    body = {"model": AGENT, "max_tokens": 4, "messages": HELLO, "stream": True}
    with httpx.stream(
        "POST", f"{served.url}/v1/messages", json=body, headers={"x-api-key": KEY}, timeout=300
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert [d["type"] for d in data] == names


def test_tool_use_plain_and_streamed(served: Served) -> None:
    agent = client(served, "/agent")  # the route's own base URL
    choice: Any = {"type": "tool", "name": "get_weather"}
    ask: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    reply = agent.messages.create(model=AGENT, max_tokens=200, messages=ask, tools=TOOLS, tool_choice=choice)
    assert reply.stop_reason == "tool_use"
    call = next(block for block in reply.content if block.type == "tool_use")
    assert call.name == "get_weather" and call.input["city"] in ("Paris", "Oslo")

    with agent.messages.stream(
        model=AGENT, max_tokens=200, messages=ask, tools=TOOLS, tool_choice=choice
    ) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "input_json_delta" in deltas
    streamed = next(block for block in final.content if block.type == "tool_use")
    assert streamed.input["city"] in ("Paris", "Oslo")

    # The tool's result goes back as a tool_result block; the model answers on.
    turn: list[Any] = [
        *ask,
        {"role": "assistant", "content": [call.model_dump(include={"type", "id", "name", "input"})]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "12 C"}]},
    ]
    follow = agent.messages.create(model=AGENT, max_tokens=8, tools=TOOLS, messages=turn)
    assert follow.usage.input_tokens > reply.usage.input_tokens


def test_keys_and_unknown_models_in_anthropics_shape(served: Served) -> None:
    assert client(served, bearer=True).messages.create(model=AGENT, max_tokens=2, messages=HELLO).content
    with pytest.raises(anthropic.AuthenticationError) as refused:
        client(served, key="sk-wrong").messages.create(model=AGENT, max_tokens=2, messages=HELLO)
    assert refused.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Incorrect API key."},
    }
    with pytest.raises(anthropic.NotFoundError) as unknown:
        client(served).messages.create(model="claude-sonnet-4-5", max_tokens=2, messages=HELLO)
    assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert "claude-sonnet-4-5" in unknown.value.message
    with pytest.raises(anthropic.NotFoundError) as elsewhere:  # coder-fast is /coder's
        client(served, "/agent").messages.count_tokens(model="coder-fast", messages=HELLO)
    assert "served on /coder" in elsewhere.value.message
    states = {
        m["route"]: m["loads"]
        for m in httpx.get(f"{served.url}/stats", headers={"x-api-key": KEY}).json()["models"]
    }
    assert states["coder"] == 0  # refusals load nothing


def test_a_prompt_beyond_the_context_is_a_400_that_says_so(served: Served) -> None:
    """What a long Claude Code session meets on a route's max_model_len (it never compacts
    for a window under 100k tokens): a 400 in Anthropic's shape, with both lengths."""
    long: list[Any] = [{"role": "user", "content": "def fibonacci(n): return n " * 20_000}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        client(served).messages.create(model=AGENT, max_tokens=8, messages=long)
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert str(AGENT_CONTEXT) in caught.value.message


def test_claude_code_round_trip(served: Served, tmp_path: Path) -> None:
    """`claude -p` with the shipped clients/claude-code/settings.json (only the port
    changed) and ANTHROPIC_API_KEY: its ~31k-token first request is served, it exits 0."""
    claude = installed(CLAUDE_CODE)
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".claude").mkdir(parents=True)
    work.mkdir()
    settings = json.loads((REPO / "clients" / "claude-code" / "settings.json").read_text())
    assert settings["env"]["ANTHROPIC_BASE_URL"] == "http://localhost:8000"
    settings["env"]["ANTHROPIC_BASE_URL"] = served.url
    (home / ".claude" / "settings.json").write_text(json.dumps(settings))
    before, start = served.prompt_tokens(), len(served.seen)
    done = subprocess.run(
        [str(claude), "-p", "Say hi in one word."],
        cwd=work,
        env=agent_env(home, ANTHROPIC_API_KEY=KEY),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    sent = [s for s in served.seen[start:] if s.path == "/v1/messages"]
    assert sent, [s.path for s in served.seen[start:]]
    assert all(s.status == 200 for s in sent), [(s.path, s.status) for s in served.seen[start:]]
    assert sent[0].headers["user-agent"].startswith(f"claude-cli/{CLAUDE_CODE.version}")
    assert sent[0].headers["x-api-key"] == KEY
    assert served.prompt_tokens() - before > 20_000  # its system prompt and tools went through

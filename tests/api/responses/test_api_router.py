"""OpenAI's Responses API against real tiny vLLM engines: the official `openai` SDK, a
function call, the Codex CLI itself (headless), and stored responses across a swap.

One server for the module, policy "exclusive": /agent (the shipped served name
`agent-tools` on the tiny model, a tool parser, the long context the Codex CLI needs) and
/chat, whose first request swaps /agent out. vLLM's response store is on for this module
(VLLM_ENABLE_RESPONSES_API_STORE=1), so `previous_response_id` works until that swap.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import tomllib
from openai.types.responses import FunctionToolParam

from llmhost.config import parse_catalog
from tests.api.agents import CODEX, RecordRequests, Seen, agent_env, agent_route, installed
from tests.apphelp import ServerThread, envelope, make_app, tiny_llm_route

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[3]
KEY = "sk-responses-test-0123"
AGENT = "agent-tools"  # the shipped /agent route's served name, as clients/codex uses it
TOOLS: list[FunctionToolParam] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather for a city",
        "strict": True,  # constrained decoding: valid arguments from random weights
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    }
]


class Served:
    def __init__(self, server: ServerThread, seen: list[Seen]) -> None:
        self.server = server
        self.seen = seen  # every request, as tests.api.agents.RecordRequests saw it

    @property
    def url(self) -> str:
        return self.server.url

    def loads(self) -> dict[str, int]:
        stats = httpx.get(f"{self.url}/stats", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        return {m["route"]: m["loads"] for m in stats.json()["models"]}

    def prompt_tokens(self) -> float:
        metrics = httpx.get(f"{self.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        line = next(x for x in metrics.text.splitlines() if x.startswith("vllm:prompt_tokens_total{"))
        return float(line.rsplit(" ", 1)[1])


@pytest.fixture(scope="module")
def served(tiny_models: Any) -> Iterator[Served]:
    catalog = parse_catalog(
        '[host]\npolicy = "exclusive"\n'
        + agent_route("agent", tiny_models.llm, AGENT)
        + tiny_llm_route("chat", tiny_models.llm, "chat-general")
    )
    app = make_app(catalog, api_key=KEY)
    seen: list[Seen] = []
    app.add_middleware(RecordRequests, seen=seen)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VLLM_ENABLE_RESPONSES_API_STORE", "1")  # read by vLLM at each engine's start
        with ServerThread(app) as server:
            yield Served(server, seen)


def client(served: Served, prefix: str = "/openai/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}{prefix}", api_key=KEY, max_retries=0, timeout=300)


def test_plain_and_streamed_responses(served: Served) -> None:
    for prefix, model in (("/openai/v1", AGENT), ("/v1", "agent"), ("/agent/v1", AGENT)):
        reply = client(served, prefix).responses.create(model=model, input="Say hi", max_output_tokens=12)
        assert reply.object == "response" and reply.status in ("completed", "incomplete")
        assert reply.output and reply.output[0].type == "message"
        assert reply.usage is not None and 0 < reply.usage.output_tokens <= 12
    assert served.loads()["agent"] == 1  # three requests, one cold start

    events = list(
        client(served).responses.create(model=AGENT, input="Count to five", max_output_tokens=12, stream=True)
    )
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert streamed and streamed == final.output_text
    # On the wire: vLLM's framing, `event: <type>` then `data: <json>` with that type.
    body = {"model": AGENT, "input": "hi", "max_output_tokens": 4, "stream": True}
    with httpx.stream(
        "POST",
        f"{served.url}/v1/responses",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=300,
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert [json.loads(line[6:])["type"] for line in lines if line.startswith("data: ")] == names


def test_function_call(served: Served) -> None:
    reply = client(served).responses.create(
        model=AGENT,
        input="Weather in Paris?",
        tools=TOOLS,
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=200,
    )
    calls = [item for item in reply.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments)["city"] in ("Paris", "Oslo")


def test_unknown_model_is_a_404_in_openais_envelope(served: Served) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(served).responses.create(model="gpt-5-codex", input="hi")
    error = envelope({"error": caught.value.body})
    assert error["code"] == "model_not_found" and "gpt-5-codex" in error["message"]


def test_codex_cli_round_trip(served: Served, tmp_path: Path) -> None:
    """`codex exec` with the shipped clients/codex/config.toml (only the port changed) and
    VLLM_API_KEY: its ~25k-token first request is served, it exits 0."""
    codex = installed(CODEX)
    home, codex_home, work = tmp_path / "home", tmp_path / "codex", tmp_path / "work"
    for folder in (home, codex_home, work):
        folder.mkdir()
    shipped = (REPO / "clients" / "codex" / "config.toml").read_text()
    assert (
        tomllib.loads(shipped)["model_providers"]["llmhost"]["base_url"] == "http://localhost:8000/openai/v1"
    )
    (codex_home / "config.toml").write_text(shipped.replace("http://localhost:8000", served.url))
    before, start = served.prompt_tokens(), len(served.seen)
    done = subprocess.run(
        [str(codex), "exec", "--skip-git-repo-check", "Say hi in one word."],
        cwd=work,
        env=agent_env(home, CODEX_HOME=str(codex_home), VLLM_API_KEY=KEY),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    sent = [s for s in served.seen[start:] if s.path == "/openai/v1/responses"]
    assert sent, [s.path for s in served.seen[start:]]
    assert all(s.status == 200 for s in sent), [(s.path, s.status) for s in served.seen[start:]]
    assert sent[0].headers["user-agent"].startswith(f"codex_exec/{CODEX.version}")
    assert sent[0].headers["authorization"] == f"Bearer {KEY}"
    assert served.prompt_tokens() - before > 15_000  # its instructions and tools went through


def test_stored_responses_continue_until_a_swap(served: Served) -> None:
    """With vLLM's store on, `previous_response_id` works while the engine stays; a swap
    unloads it and its store, and the same id is then a clear 400, not vLLM's 404."""
    agent = client(served)
    first = agent.responses.create(model=AGENT, input="Remember 7", max_output_tokens=4, store=True)
    second = agent.responses.create(
        model=AGENT, input="What number?", previous_response_id=first.id, max_output_tokens=4
    )
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens  # the first turn came along
    loads = served.loads()

    client(served, "/chat/v1").chat.completions.create(
        model="chat-general", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )  # exclusive: /agent is unloaded to make room
    with pytest.raises(openai.BadRequestError) as caught:
        agent.responses.create(model=AGENT, input="And now?", previous_response_id=first.id)
    error = envelope({"error": caught.value.body})
    assert (error["code"], error["param"]) == ("previous_response_not_found", "previous_response_id")
    assert first.id in error["message"] and "unloads" in error["message"]
    after = served.loads()
    assert after["agent"] == loads["agent"] + 1 and after["chat"] == loads["chat"] + 1

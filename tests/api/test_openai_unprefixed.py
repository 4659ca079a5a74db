"""`/openai` without `/v1`: the connection URL of the system llmhost replaces.

Open WebUI connections written for that system point at `http://HOST:8000/openai`. Each
endpoint there must answer exactly like its `/openai/v1` twin, here against a real tiny
vLLM engine and the real tiny SD3 pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmhost.config import parse_catalog
from tests.apphelp import ServerThread, make_app, tiny_llm_route

pytestmark = pytest.mark.engine

KEY = "unprefixed-test-key"


@pytest.fixture(scope="module")
def server(tiny_models: Any) -> Iterator[ServerThread]:
    catalog = parse_catalog(
        '[host]\npolicy = "fit"\n'
        + tiny_llm_route("coder", tiny_models.llm, "qwen2.5-coder-tiny")
        + f"""
[routes.vision]
kind = "diffusion"
model = "{tiny_models.sd3}"
served_names = ["vision-diffusion"]
[routes.vision.pipeline]
device = "cpu"
max_edge = 128
default_steps = 2
max_steps = 4
"""
    )
    with ServerThread(make_app(catalog, api_key=KEY)) as srv:
        yield srv


def _pair(
    server: ServerThread, method: str, path: str, body: dict[str, Any] | None = None
) -> list[httpx.Response]:
    """The same request on `/openai/v1{path}` and on `/openai{path}`."""
    headers = {"Authorization": f"Bearer {KEY}"}
    return [
        httpx.request(method, f"{server.url}{prefix}{path}", json=body, headers=headers, timeout=300)
        for prefix in ("/openai/v1", "/openai")
    ]


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("id", "created")}


def test_models_list_is_the_same(server: ServerThread) -> None:
    twin, bare = _pair(server, "GET", "/models")
    assert twin.status_code == bare.status_code == 200
    assert bare.json() == twin.json()
    assert {m["id"] for m in bare.json()["data"]} == {"qwen2.5-coder-tiny", "vision-diffusion"}
    refused = httpx.get(f"{server.url}/openai/models")
    assert refused.status_code == 401 and set(refused.json()["error"]) == {"message", "type", "param", "code"}


def test_chat_completion_is_the_same(server: ServerThread) -> None:
    body = {
        "model": "qwen2.5-coder-tiny",
        "messages": [{"role": "user", "content": "Say hi"}],
        "max_tokens": 8,
        "temperature": 0,
        "seed": 1,
    }
    twin, bare = _pair(server, "POST", "/chat/completions", body)
    assert twin.status_code == bare.status_code == 200, bare.text
    assert bare.json()["object"] == "chat.completion"
    assert bare.json()["choices"][0]["message"]["role"] == "assistant"
    assert _without_ids(bare.json()) == _without_ids(twin.json())


def test_streamed_chat_is_sse(server: ServerThread) -> None:
    body = {
        "model": "coder",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4,
        "stream": True,
    }
    bare = _pair(server, "POST", "/chat/completions", body)[1]
    assert bare.status_code == 200 and bare.headers["content-type"].startswith("text/event-stream")
    assert bare.text.rstrip().endswith("data: [DONE]")


def test_completion_is_the_same(server: ServerThread) -> None:
    body = {"model": "qwen2.5-coder-tiny", "prompt": "def add(a, b):", "max_tokens": 8, "temperature": 0}
    twin, bare = _pair(server, "POST", "/completions", body)
    assert twin.status_code == bare.status_code == 200, bare.text
    assert bare.json()["object"] == "text_completion"
    assert _without_ids(bare.json()) == _without_ids(twin.json())


def test_image_generation_is_the_same(server: ServerThread) -> None:
    body = {"model": "vision-diffusion", "prompt": "a red fox", "size": "64x64", "seed": 3}
    twin, bare = _pair(server, "POST", "/images/generations", body)
    assert twin.status_code == bare.status_code == 200, bare.text
    assert bare.json()["data"][0]["b64_json"] == twin.json()["data"][0]["b64_json"]
    assert bare.json()["seed"] == 3


def test_errors_are_the_same_envelope(server: ServerThread) -> None:
    for path, body in (
        ("/chat/completions", {"model": "no-such-model", "messages": []}),
        ("/completions", {"model": "no-such-model", "prompt": "x"}),
        ("/images/generations", {"model": "no-such-model", "prompt": "x"}),
    ):
        twin, bare = _pair(server, "POST", path, body)
        assert twin.status_code == bare.status_code == 404, path
        assert bare.json() == twin.json()
        assert bare.json()["error"]["code"] == "model_not_found"

"""Errors on the Messages API paths: Anthropic's shape `{"type": "error", "error": {"type",
"message"}}` with the status and headers the host gives everywhere. On the real app with a
fake backend (vLLM's request models validate; nothing loads an engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from llmhost.api.anthropic.errors import error_type, is_anthropic_path
from tests import catalogs
from tests.apphelp import envelope, make_app, running
from tests.fakes import Recorder
from tests.suites.test_fuzz import ServingRecorder

KEY = "sk-anthropic-errors"
HELLO = {"max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
CATALOG = catalogs.catalog(catalogs.CODER_AND_VISION)


def anthropic_error(body: Any) -> dict[str, str]:
    """The error of Anthropic's shape, after checking `body` is exactly that shape."""
    assert isinstance(body, dict) and set(body) == {"type", "error"} and body["type"] == "error"
    assert set(body["error"]) == {"type", "message"}
    error: dict[str, str] = body["error"]
    return error


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, None, "invalid_request_error"),
        (401, "invalid_api_key", "authentication_error"),
        (404, "model_not_found", "not_found_error"),
        (413, "payload_too_large", "request_too_large"),
        (501, "not_implemented", "api_error"),
        (503, "model_unavailable", "api_error"),
        (503, "overloaded", "overloaded_error"),
        (503, "shutting_down", "overloaded_error"),
        (500, None, "api_error"),
    ],
)
def test_error_types_are_anthropics(status: int, code: str | None, expected: str) -> None:
    assert error_type(status, code) == expected


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens", "/coder/v1/messages"])
async def test_refusals_before_any_model_in_anthropics_shape(path: str) -> None:
    recorder = ServingRecorder(load_seconds=0, stop_seconds=0)
    async with running(make_app(CATALOG, api_key=KEY, factory=recorder.factory)) as client:
        missing = await client.post(path, json={"model": "coder-fast", **HELLO})
        assert missing.status_code == 401
        assert anthropic_error(missing.json())["type"] == "authentication_error"
        assert "x-api-key" in missing.json()["error"]["message"]
        keyed = {"x-api-key": KEY}
        unknown = await client.post(path, json={"model": "claude-sonnet-4-5", **HELLO}, headers=keyed)
        assert unknown.status_code == 404
        error = anthropic_error(unknown.json())
        assert error["type"] == "not_found_error" and "claude-sonnet-4-5" in error["message"]
        image = await client.post(path, json={"model": "vision-diffusion", **HELLO}, headers=keyed)
        if path.startswith("/v1/"):
            assert image.status_code == 400 and "image model" in anthropic_error(image.json())["message"]
        else:  # on /coder, another route's model
            assert (
                image.status_code == 404 and "served on /vision" in anthropic_error(image.json())["message"]
            )
        bad_json = await client.post(path, content=b"{nope", headers=keyed)
        assert bad_json.status_code == 400
        assert anthropic_error(bad_json.json())["type"] == "invalid_request_error"
        no_messages = await client.post(path, json={"model": "coder-fast"}, headers=keyed)
        assert no_messages.status_code == 400
        assert "messages" in anthropic_error(no_messages.json())["message"]
    assert recorder.loads == {} and recorder.served == []


async def test_max_tokens_is_required_for_messages_only() -> None:
    recorder = ServingRecorder(load_seconds=0, stop_seconds=0)
    body = {"model": "coder-fast", "messages": HELLO["messages"]}
    async with running(make_app(CATALOG, factory=recorder.factory)) as client:
        refused = await client.post("/v1/messages", json=body)
        counted = await client.post("/v1/messages/count_tokens", json=body)
    assert refused.status_code == 400 and "max_tokens" in anthropic_error(refused.json())["message"]
    assert counted.status_code == 200 and counted.json() == {"input_tokens": 1}
    assert recorder.served == ["count_tokens coder"]


async def test_a_model_that_cannot_load_is_a_503_in_anthropics_shape() -> None:
    recorder = Recorder()
    recorder.fail["coder"] = RuntimeError("no weights here")
    async with running(make_app(CATALOG, factory=recorder.factory)) as client:
        response = await client.post("/v1/messages", json={"model": "coder-fast", **HELLO})
    assert response.status_code == 503 and "Retry-After" in response.headers
    error = anthropic_error(response.json())
    assert error["type"] == "api_error" and "no weights here" in error["message"]


# ---- one decision: which paths answer in Anthropic's shape --------------------------------


@pytest.mark.parametrize(
    ("path", "anthropic"),
    [
        ("/v1/messages", True),
        ("/v1/messages/count_tokens", True),
        ("/coder/v1/messages", True),
        ("/coder/v1/messages/count_tokens", True),
        ("/v1/messages/batches", True),  # Anthropic's, not served: its 404 reads as Anthropic's
        ("/openai/v1/messages", True),  # /{route}/v1/messages with a route named "openai"
        ("/v1/chat/completions", False),
        ("/v1/messagesx", False),
        ("/a/b/v1/messages", False),
        ("/v1/responses", False),
        ("/", False),
    ],
)
def test_which_paths_are_anthropics(path: str, anthropic: bool) -> None:
    assert is_anthropic_path(path) is anthropic


LIMITED = catalogs.catalog(catalogs.CODER_AND_VISION, max_body_bytes=2048)


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens", "/coder/v1/messages"])
async def test_a_body_over_the_limit_is_a_413_in_anthropics_shape(path: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused once it crosses
        for _ in range(5):
            yield b"x" * 1000

    async with running(make_app(LIMITED, factory=Recorder().factory)) as client:
        declared = await client.post(path, content=b"x" * 5000)
        streamed = await client.post(path, content=chunks())
        openai = await client.post("/v1/chat/completions", content=b"x" * 5000)
    for response in (declared, streamed):
        assert response.status_code == 413
        error = anthropic_error(response.json())
        assert error["type"] == "request_too_large" and "2048 bytes" in error["message"]
    assert openai.status_code == 413 and envelope(openai.json())["code"] == "payload_too_large"


async def test_errors_before_any_handler_are_in_anthropics_shape_on_its_paths() -> None:
    app = make_app(CATALOG, factory=Recorder().factory)

    # Stand-ins for what the app raises outside the Messages handlers: a request the
    # framework refuses (422) and a bug (500), on an Anthropic path and elsewhere.
    async def typed(count: int) -> dict[str, int]:
        return {"count": count}

    async def broken() -> None:
        raise RuntimeError("a bug")

    for prefix in ("/v1/messages/probe", "/probe"):
        app.add_api_route(f"{prefix}/typed", typed, methods=["GET"])
        app.add_api_route(f"{prefix}/broken", broken, methods=["GET"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://llmhost") as client,
    ):
        wrong_method = await client.get("/v1/messages")
        on_route = await client.get("/coder/v1/messages/count_tokens")
        unknown = await client.post("/v1/messages/batches", json={})
        invalid = await client.get("/v1/messages/probe/typed", params={"count": "many"})
        bug = await client.get("/v1/messages/probe/broken")
        elsewhere = [
            await client.get("/v1/chat/completions"),
            await client.post("/nope", json={}),
            await client.get("/probe/typed", params={"count": "many"}),
            await client.get("/probe/broken"),
        ]
    for response in (wrong_method, on_route):
        assert response.status_code == 405 and response.headers["allow"] == "POST"
        assert anthropic_error(response.json())["type"] == "invalid_request_error"
    assert unknown.status_code == 404 and anthropic_error(unknown.json())["type"] == "not_found_error"
    assert invalid.status_code == 400
    assert "count" in anthropic_error(invalid.json())["message"]
    assert bug.status_code == 500
    assert anthropic_error(bug.json()) == {"type": "api_error", "message": "Internal error: RuntimeError"}
    assert [r.status_code for r in elsewhere] == [405, 404, 400, 500]
    for response in elsewhere:  # unchanged: OpenAI's envelope
        envelope(response.json())


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
@pytest.mark.parametrize(
    ("route", "model", "message"),
    [
        ("embed", "embedder", "'embedder' is an embedding model: use POST /v1/embeddings."),
        ("rerank", "reranker", "'reranker' is a reranker: use POST /v1/rerank."),
    ],
)
async def test_a_pooling_model_is_a_400_naming_its_endpoint(
    path: str, route: str, model: str, message: str
) -> None:
    """vLLM builds no Messages serving for a pooling engine (llmhost.backends.vllm.pooling):
    the request is refused before any lease, as chat's is (llmhost.api.resolve)."""
    recorder = ServingRecorder(load_seconds=0, stop_seconds=0)
    routes = {"coder": catalogs.CODER, "embed": catalogs.EMBED, "rerank": catalogs.RERANK}
    async with running(make_app(catalogs.catalog(routes), factory=recorder.factory)) as client:
        unified = await client.post(path, json={**HELLO, "model": model})
        on_route = await client.post(f"/{route}{path}", json=HELLO)
    for response in (unified, on_route):
        assert response.status_code == 400
        assert anthropic_error(response.json()) == {"type": "invalid_request_error", "message": message}
    assert recorder.loads == {} and recorder.served == []

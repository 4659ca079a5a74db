"""Errors on the Messages API paths: Anthropic's shape `{"type": "error", "error": {"type",
"message"}}` with the status and headers the host gives everywhere. On the real app with a
fake backend (vLLM's request models validate; nothing loads an engine)."""

from __future__ import annotations

from typing import Any

import pytest

from llmhost.api.anthropic.errors import error_type
from tests import catalogs
from tests.apphelp import make_app, running
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

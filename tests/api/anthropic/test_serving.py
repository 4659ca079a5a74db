"""A Messages request whose engine breaks under it ends cleanly, in Anthropic's shape: not
streamed, a 503 `api_error` that names the failure, with Retry-After (never an unexpected
500, after which the server drops the connection); streamed, an `error` event naming it
instead of the one vLLM's converter makes of the chat stream's error (a validation error of
its own parsing). With fake serving objects that behave as vLLM's do; a real engine killed
under a request is tests/api/chat/test_engine_failure.py's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api import broken_engine
from tests.api.anthropic.test_errors import anthropic_error
from tests.api.broken_engine import CATALOG, DIED, UNLOADED, engine_dead, last_event
from tests.apphelp import make_app, running
from tests.fakes import FakeBackend

ASK = {"model": "coder-fast", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}

START = (
    'event: message_start\ndata: {"type":"message_start","message":{"id":"chatcmpl-1","type":"message",'
    '"role":"assistant","content":[],"model":"coder-fast","stop_reason":null,"stop_sequence":null,'
    '"usage":{"input_tokens":0,"output_tokens":0}}}\n\n'
)
# What vLLM's message_stream_converter sends when the chat stream under it ends with its
# error event (as it does when the engine dies): it fails to parse that event as a chunk.
VLLM_ERROR_EVENT = (
    'event: error\ndata: {"type":"error","error":{"type":"internal_error","message":"2 validation '
    'errors for ChatCompletionStreamResponse\\nmodel\\n  Field required [type=missing]"}}\n\n'
)


class BrokenMessages:
    """vLLM's AnthropicServingMessages when something breaks: a call that raises as its engine
    died, or a stream that after its first event sends vLLM's error event as the engine dies
    ("dies"), after the host unloaded the model ("unloaded") or while the engine lives on
    ("event"), or raises ("raise")."""

    def __init__(self, backend: FakeBackend, rec: BrokenRecorder) -> None:
        self.backend = backend
        self.rec = rec

    async def create_messages(self, request: Any, raw_request: Any) -> Any:
        if not request.stream:
            return await self.count_tokens(request, raw_request)

        async def events() -> AsyncIterator[str]:
            yield START
            if self.rec.then == "dies":
                self.backend.dead = DIED
            if self.rec.then == "unloaded":
                self.rec.unload_under_the_stream()
            if self.rec.then == "raise":
                raise RuntimeError("engine gone")
            yield VLLM_ERROR_EVENT

        return events()

    async def count_tokens(self, request: Any, raw_request: Any) -> Any:
        self.backend.dead = DIED
        raise engine_dead()


class BrokenRecorder(broken_engine.BrokenRecorder):
    endpoint = "messages"

    def broken_serving(self, backend: FakeBackend) -> BrokenMessages:
        return BrokenMessages(backend, self)


@pytest.mark.parametrize("path", ["/v1/messages", "/coder/v1/messages/count_tokens"])
async def test_a_dead_engine_is_a_503_in_anthropics_shape_that_names_it(path: str) -> None:
    app = make_app(CATALOG, factory=BrokenRecorder().factory)
    async with running(app) as client:
        response = await client.post(path, json=ASK)
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        error = anthropic_error(response.json())
        assert error["type"] == "api_error"
        assert "coder-fast" in error["message"] and DIED in error["message"]
        assert app.state.host.manager.snapshot()[0]["in_flight"] == 0  # the lease ended


@pytest.mark.parametrize(
    ("then", "message"),
    [
        ("dies", DIED),
        ("unloaded", UNLOADED),
        ("raise", "The stream from coder-fast broke off: RuntimeError: engine gone"),
    ],
)
async def test_a_broken_stream_ends_with_an_error_event_that_says_why(then: str, message: str) -> None:
    rec = BrokenRecorder(then=then)
    app = make_app(CATALOG, factory=rec.factory)
    async with running(app) as client:
        rec.manager = app.state.host.manager
        response = await client.post("/v1/messages", json={**ASK, "stream": True})
        assert response.status_code == 200 and response.text.startswith(START)
        name, event = last_event(response.text)
        assert name == "error" and event["error"]["type"] == "api_error"
        assert message in anthropic_error(event)["message"]
        assert "ChatCompletionStreamResponse" not in response.text
        assert app.state.host.manager.snapshot()[0]["in_flight"] == 0


async def test_vllms_error_event_for_a_live_engine_passes_unchanged() -> None:
    async with running(make_app(CATALOG, factory=BrokenRecorder(then="event").factory)) as client:
        response = await client.post("/v1/messages", json={**ASK, "stream": True})
    assert response.text == START + VLLM_ERROR_EVENT

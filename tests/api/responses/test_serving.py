"""A Responses request whose engine breaks under it ends cleanly: not streamed, a 503 that
names the failure (never an unexpected 500, after which the server drops the connection);
streamed, the Responses API's `error` event naming it instead of a cut stream. With fake
serving objects that raise as vLLM's do (its stream generator catches no engine error, so
a dead engine's EngineDeadError reaches the host); a real engine killed under a request is
tests/api/chat/test_engine_failure.py's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types.responses import ResponseTextDeltaEvent

from tests.api import broken_engine
from tests.api.broken_engine import CATALOG, DIED, UNLOADED, engine_dead, last_event
from tests.apphelp import envelope, make_app, running
from tests.fakes import FakeBackend

ASK = {"model": "coder-fast", "input": "hi"}


class BrokenResponses:
    """vLLM's OpenAIServingResponses when something breaks: a call that raises before any
    answer (its engine died), or a stream that, after its first event,
    raises as the engine dies ("dies"), after the host unloaded the model under it
    ("unloaded"), or for no reason of the lifecycle's ("raise")."""

    def __init__(self, backend: FakeBackend, rec: BrokenRecorder) -> None:
        self.backend = backend
        self.rec = rec

    async def create_responses(self, request: Any, raw_request: Any) -> Any:
        if not request.stream:
            self.backend.dead = DIED
            raise engine_dead()

        async def events() -> AsyncIterator[Any]:
            yield ResponseTextDeltaEvent(
                type="response.output_text.delta",
                item_id="msg_1",
                output_index=0,
                content_index=0,
                delta="Hel",
                logprobs=[],
                sequence_number=3,
            )
            if self.rec.then == "dies":
                self.backend.dead = DIED
                raise engine_dead()
            if self.rec.then == "unloaded":
                self.rec.unload_under_the_stream()
                raise engine_dead()  # its engine stopped: vLLM cannot tell why
            raise RuntimeError("engine gone")

        return events()


class BrokenRecorder(broken_engine.BrokenRecorder):
    endpoint = "responses"

    def broken_serving(self, backend: FakeBackend) -> BrokenResponses:
        return BrokenResponses(backend, self)


async def test_a_dead_engine_is_a_503_that_names_it() -> None:
    rec = BrokenRecorder(then="dies")
    app = make_app(CATALOG, factory=rec.factory)
    async with running(app) as client:
        response = await client.post("/v1/responses", json=ASK)
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        error = envelope(response.json())
        assert error["code"] == "engine_failed" and error["type"] == "server_error"
        assert "coder-fast" in error["message"] and DIED in error["message"]
        assert app.state.host.manager.snapshot()[0]["in_flight"] == 0  # the lease ended


@pytest.mark.parametrize(
    ("then", "code", "message"),
    [
        ("dies", "engine_failed", DIED),
        ("unloaded", "stream_interrupted", UNLOADED),
        ("raise", "stream_interrupted", "broke off: RuntimeError: engine gone"),
    ],
)
async def test_a_broken_stream_ends_with_an_error_event(then: str, code: str, message: str) -> None:
    rec = BrokenRecorder(then=then)
    app = make_app(CATALOG, factory=rec.factory)
    async with running(app) as client:
        rec.manager = app.state.host.manager
        response = await client.post("/coder/v1/responses", json={**ASK, "stream": True})
        assert response.status_code == 200
        assert response.text.startswith("event: response.output_text.delta\n")
        name, event = last_event(response.text)
        assert name == "error" and event["type"] == "error"
        assert event["code"] == code and message in event["message"]
        assert event["sequence_number"] == 4  # the next after the last event vLLM sent
        assert "See stack trace" not in response.text
        assert app.state.host.manager.snapshot()[0]["in_flight"] == 0

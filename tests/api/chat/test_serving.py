"""Loading feedback: the wait for a cold model streams as reasoning deltas."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from llmhost.config import parse_catalog
from llmhost.server.preload import THREAD_NAME
from tests.api import broken_engine
from tests.apphelp import ServerThread, envelope, make_app, running, tiny_llm_route
from tests.fakes import FakeBackend, Recorder


def events(lines: list[str]) -> list[Any]:
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


@pytest.mark.engine
def test_cold_start_streams_progress_then_the_answer(tiny_models: Any) -> None:
    catalog = parse_catalog(
        "[host]\nloading_feedback = true\n" + tiny_llm_route("coder", tiny_models.llm, "coder-fast")
    )
    body = {
        "model": "coder-fast",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8,
        "stream": True,
    }
    with ServerThread(make_app(catalog)) as server:
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=300) as r:
            lines = [line for line in r.iter_lines() if line]
        chunks = events(lines)
        progress = [c["choices"][0]["delta"].get("reasoning") or "" for c in chunks]
        assert progress[0].startswith("loading coder-fast… 0 s")
        assert any("ready after" in p for p in progress)
        answer = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert answer
        assert lines[-1] == "data: [DONE]"
        # One stream: one id across progress and answer, the role in the first chunk only.
        assert len({c["id"] for c in chunks}) == 1
        roles = [c["choices"][0]["delta"].get("role") for c in chunks if c["choices"]]
        assert roles[0] == "assistant" and not any(roles[1:])
        # Warm now: no feedback chunks on the next request.
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=300) as r:
            warm = events([line for line in r.iter_lines() if line])
        assert not any(
            "loading" in (c["choices"][0]["delta"].get("reasoning") or "") for c in warm if c["choices"]
        )


def test_answer_chunks_continue_the_progress_stream() -> None:
    from llmhost.api.chat.serving import continue_stream as _continue

    ours = "chatcmpl-ours"
    prefix = f'data: {{"id":{json.dumps(ours)},'
    same = f'data: {{"id":"{ours}","choices":[{{"index":0,"delta":{{"content":"hé"}}}}]}}\n\n'
    assert _continue(same, prefix, ours) is same  # nothing to change: not parsed
    first = (
        'data: {"id":"chatcmpl-vllm","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    )
    body = json.loads(_continue(first, prefix, ours)[6:])
    assert body["id"] == ours and body["choices"][0]["delta"] == {"content": ""}
    other = 'data: {"id":"chatcmpl-vllm","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
    assert json.loads(_continue(other, prefix, ours)[6:])["id"] == ours
    for untouched in ("data: [DONE]\n\n", 'data: {"error":{"message":"boom"}}\n\n'):
        assert _continue(untouched, prefix, ours) == untouched


async def test_failed_load_ends_the_feedback_stream_with_an_error() -> None:
    rec = Recorder()
    rec.fail["coder"] = RuntimeError("no weights here")
    catalog = parse_catalog(
        "[host]\nloading_feedback = true\n[routes.coder]\nkind = 'llm'\nmodel = 'org/coder'\n"
    )
    async with running(make_app(catalog, factory=rec.factory)) as client:
        response = await client.post(
            "/coder/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "stream": True},
        )
        lines = [line for line in response.text.splitlines() if line]
    assert "loading" in events(lines)[0]["choices"][0]["delta"]["reasoning"]
    error = events(lines)[-1]["error"]
    assert "no weights here" in error["message"] and error["code"] == "model_unavailable"
    assert lines[-1] == "data: [DONE]"


async def test_feedback_is_off_by_default() -> None:
    rec = Recorder()
    rec.fail["coder"] = RuntimeError("no weights here")
    catalog = parse_catalog("[routes.coder]\nkind = 'llm'\nmodel = 'org/coder'\n")
    async with running(make_app(catalog, factory=rec.factory)) as client:
        response = await client.post(
            "/coder/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "stream": True},
        )
    assert response.status_code == 503 and "Retry-After" in response.headers


# ---- a broken engine stream under loading feedback --------------------------------------


# vLLM's own event when the engine dies under a stream (its stream generator catches the
# EngineDeadError and sends this before its [DONE]).
VLLM_DEAD_EVENT = (
    'data: {"error": {"message": "EngineCore encountered an issue. See stack trace (above) for the '
    'root cause.", "type": "InternalServerError", "param": null, "code": 500}}\n\n'
)


class BreakingServing:
    """vLLM's chat serving as seen by the host when something breaks: a call that raises
    before any chunk (`raises`), or a stream that, after its first chunk, stops with an
    exception ("raise"), has its engine die and ends with vLLM's own error event ("dies"),
    ends with vLLM's error event while the engine lives on ("event"), or is unloaded by the
    host, which then sends vLLM's error event ("unloaded")."""

    def __init__(self, backend: FakeBackend, rec: BreakingRecorder) -> None:
        self.backend = backend
        self.rec = rec
        self.raises = rec.raises
        self.then = rec.then

    async def create_chat_completion(self, request: Any, raw_request: Any) -> Any:
        if self.raises is not None:
            raise self.raises

        async def stream() -> AsyncIterator[str]:
            first = {"id": "chatcmpl-vllm", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}
            yield f"data: {json.dumps(first)}\n\n"
            if self.then == "raise":
                raise RuntimeError("engine gone")
            if self.then == "dies":
                self.backend.dead = "the vLLM engine core process died"
            if self.then == "unloaded":
                self.rec.unload_under_the_stream()
            yield VLLM_DEAD_EVENT
            yield "data: [DONE]\n\n"

        return stream()


@dataclass
class BreakingRecorder(broken_engine.BrokenRecorder):
    endpoint = "chat"
    raises: Exception | None = None
    then: str = "raise"

    def broken_serving(self, backend: FakeBackend) -> BreakingServing:
        return BreakingServing(backend, self)


FEEDBACK = "[host]\nloading_feedback = true\n[routes.coder]\nkind = 'llm'\nmodel = 'org/coder'\n"
STREAM = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


async def test_a_broken_engine_stream_under_feedback_ends_with_an_error_event() -> None:
    rec = BreakingRecorder()
    app = make_app(parse_catalog(FEEDBACK), factory=rec.factory)
    async with running(app) as client:
        response = await client.post("/coder/v1/chat/completions", json=STREAM)
        lines = [line for line in response.text.splitlines() if line]
        chunks = events(lines)
        assert "loading" in chunks[0]["choices"][0]["delta"]["reasoning"]  # it was a cold start
        assert chunks[-2]["choices"][0]["delta"]["content"] == "Hel"
        error = envelope(chunks[-1])
        assert error["code"] == "stream_interrupted" and "RuntimeError: engine gone" in error["message"]
        assert lines[-1] == "data: [DONE]"
        # The lease ended with the stream.
        assert app.state.host.manager.snapshot()[0]["in_flight"] == 0


def _import_after_any_preload() -> None:
    """Let the background imports of apps started by earlier tests finish first: two threads
    importing vLLM at once fail on partly initialised modules (llmhost.server.preload)."""
    for thread in threading.enumerate():
        if thread.name == THREAD_NAME:
            thread.join()


async def test_a_call_refused_by_vllm_under_feedback_is_its_error_event() -> None:
    _import_after_any_preload()
    from vllm.exceptions import VLLMValidationError

    too_long = VLLMValidationError("max_tokens is too large", parameter="max_tokens")
    rec = BreakingRecorder(raises=too_long)
    async with running(make_app(parse_catalog(FEEDBACK), factory=rec.factory)) as client:
        response = await client.post("/coder/v1/chat/completions", json=STREAM)
    lines = [line for line in response.text.splitlines() if line]
    error = envelope(events(lines)[-1])
    assert error["type"] == "invalid_request_error" and error["param"] == "max_tokens"
    assert "max_tokens is too large" in error["message"]
    assert lines[-1] == "data: [DONE]"


@pytest.mark.parametrize("feedback", [True, False])
async def test_vllms_event_for_a_dead_engine_becomes_one_that_names_the_failure(feedback: bool) -> None:
    rec = BreakingRecorder(then="dies")
    text = FEEDBACK if feedback else FEEDBACK.replace("true", "false")
    async with running(make_app(parse_catalog(text), factory=rec.factory)) as client:
        response = await client.post("/coder/v1/chat/completions", json=STREAM)
    lines = [line for line in response.text.splitlines() if line]
    assert lines[-1] == "data: [DONE]" and lines.count("data: [DONE]") == 1
    error = envelope(events(lines)[-1])
    assert error["code"] == "engine_failed" and error["type"] == "server_error"
    assert "coder" in error["message"] and "the vLLM engine core process died" in error["message"]
    assert "See stack trace" not in response.text


async def test_vllms_error_event_for_a_live_engine_passes_unchanged() -> None:
    rec = BreakingRecorder(then="event")
    async with running(make_app(parse_catalog(FEEDBACK), factory=rec.factory)) as client:
        response = await client.post("/coder/v1/chat/completions", json=STREAM)
    assert response.text.endswith(VLLM_DEAD_EVENT + "data: [DONE]\n\n")


async def test_vllms_error_event_after_an_unload_under_the_stream_says_so() -> None:
    rec = BreakingRecorder(then="unloaded")
    app = make_app(parse_catalog(FEEDBACK), factory=rec.factory)
    async with running(app) as client:
        rec.manager = app.state.host.manager
        response = await client.post("/coder/v1/chat/completions", json=STREAM)
    lines = [line for line in response.text.splitlines() if line]
    error = envelope(events(lines)[-1])
    assert error["code"] == "stream_interrupted"
    assert error["message"] == "coder was unloaded (its engine stopped working) before this request finished"
    assert lines[-1] == "data: [DONE]" and lines.count("data: [DONE]") == 1

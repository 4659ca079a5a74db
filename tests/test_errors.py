"""errors: every failure a client sees is OpenAI's envelope, built in one place."""

from __future__ import annotations

import json
import threading

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from llmhost.errors import (
    EngineFailed,
    HostError,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    PayloadTooLarge,
    RouteNotFound,
    Unauthorized,
    error_response,
    invalid_body,
    sse_host_error,
    vllm_error,
    vllm_error_status,
)
from llmhost.server.preload import THREAD_NAME
from tests import catalogs
from tests.apphelp import envelope, make_app, running
from tests.fakes import Recorder


@pytest.mark.parametrize(
    ("error", "status", "type_", "code"),
    [
        (InvalidRequest("bad"), 400, "invalid_request_error", None),
        (Unauthorized("who"), 401, "authentication_error", "invalid_api_key"),
        (ModelNotFound("which"), 404, "invalid_request_error", "model_not_found"),
        (RouteNotFound("where"), 404, "invalid_request_error", "not_found"),
        (PayloadTooLarge("big"), 413, "invalid_request_error", "payload_too_large"),
        (ModelUnavailable("later"), 503, "server_error", "model_unavailable"),
    ],
)
def test_each_error_is_its_status_and_envelope(
    error: HostError, status: int, type_: str, code: str | None
) -> None:
    response = error_response(error)
    assert response.status_code == status
    assert envelope(json.loads(bytes(response.body))) == {
        "message": error.message,
        "type": type_,
        "param": None,
        "code": code,
    }


def test_param_code_and_retry_after_come_through() -> None:
    error = ModelUnavailable("loading", param="model", code="warming", retry_after=2.4)
    response = error_response(error)
    assert response.headers["retry-after"] == "2"
    assert envelope(json.loads(bytes(response.body)))["param"] == "model"
    assert envelope(json.loads(bytes(response.body)))["code"] == "warming"
    assert (
        error_response(ModelUnavailable("soon", retry_after=0.1)).headers["retry-after"] == "1"
    )  # at least 1 s
    assert "retry-after" not in error_response(InvalidRequest("no")).headers


def test_a_stream_ends_with_the_error_then_done() -> None:
    events = sse_host_error(PayloadTooLarge("big")).split("\n\n")
    assert events[1:] == ["data: [DONE]", ""]
    assert envelope(json.loads(events[0].removeprefix("data: ")))["code"] == "payload_too_large"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str
    n: int = 1


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({}, "prompt", "'prompt' is required."),
        ({"prompt": "x", "size": 1}, "size", "Unknown field 'size'. This endpoint accepts: prompt, n."),
        ({"prompt": "x", "n": "2"}, "n", "Invalid 'n': Input should be a valid integer."),
        (
            {"prompt": 1, "n": "2"},
            "prompt",
            "Invalid 'prompt': Input should be a valid string (and 1 more problems).",
        ),
    ],
)
def test_validation_errors_become_one_400_in_one_style(
    body: dict[str, object], param: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _Body.model_validate(body)
    error = invalid_body(caught.value, accepted=["prompt", "n"])
    assert (error.status, error.param, error.message) == (400, param, message)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"choices": []}, None),
        ("text", None),
        ({"error": {"message": "too long", "code": 400}}, 400),
        ({"error": {"message": "engine died"}}, 500),
        ({"error": {"message": "odd", "code": "x"}}, 500),
    ],
)
def test_vllm_error_payloads_and_their_status(payload: object, status: int | None) -> None:
    assert vllm_error_status(payload) == status


async def test_an_unknown_endpoint_is_a_404_envelope() -> None:
    rec = Recorder()
    async with running(make_app(catalogs.catalog(catalogs.CODER_AND_VISION), factory=rec.factory)) as client:
        response = await client.get("/no/such/endpoint/at/all")
        assert response.status_code == 404
        assert envelope(response.json())["code"] == "not_found"
    assert rec.events == []  # nothing was loaded


def _import_after_any_preload() -> None:
    """Let the background imports of apps started by earlier tests finish first: two threads
    importing vLLM at once fail on partly initialised modules (llmhost.server.preload)."""
    for thread in threading.enumerate():
        if thread.name == THREAD_NAME:
            thread.join()


def test_vllm_errors_become_the_hosts() -> None:
    _import_after_any_preload()
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

    dead = vllm_error(EngineDeadError(), "coder-fast", "the vLLM engine core process died")
    assert isinstance(dead, EngineFailed)
    response = error_response(dead)
    error = envelope(json.loads(bytes(response.body)))
    assert response.status_code == 503 and "retry-after" in response.headers
    assert error["code"] == "engine_failed" and error["type"] == "server_error"
    assert "coder-fast" in error["message"] and "engine core process died" in error["message"]
    # Without the backend's account, still named as the engine's failure.
    assert "engine core process died" in vllm_error(EngineDeadError(), "coder-fast").args[0]

    try:
        raise EngineGenerateError() from KeyError("kv block")
    except EngineGenerateError as exc:
        generate = vllm_error(exc, "coder-fast")
    assert type(generate) is HostError and generate.status == 500
    assert generate.args[0] == "coder-fast could not answer this request: KeyError: 'kv block'"

    invalid = vllm_error(VLLMValidationError("too long", parameter="max_tokens"), "coder-fast")
    assert isinstance(invalid, InvalidRequest) and invalid.param == "max_tokens"

    own = RuntimeError("a bug of ours")
    assert vllm_error(own, "coder-fast") is own  # the unexpected-error handler's

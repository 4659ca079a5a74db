"""Bad input, case by case: each gets a 4xx in the OpenAI envelope, never a 5xx or a hang.

Two tables. `REFUSED_UP_FRONT`: what the host and vLLM's request models refuse before
any model is touched (malformed JSON, wrong types, missing fields, unknown routes and
models, sizes and limits of the image routes, oversized bodies); the app runs with a stub
backend and nothing may load or reach it. `REFUSED_BY_THE_ENGINE`: values that pass the
request models and are judged by vLLM's serving layer against the loaded model
(`max_tokens` beyond the context, sampling values out of range); one real tiny engine.

A case may carry `bug=...`: it is then marked xfail(strict) and pins a known bug until
it is fixed (none open now).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from llmhost.config import parse_catalog
from tests import catalogs
from tests.apphelp import ServerThread, make_app, tiny_llm_route
from tests.suites.test_fuzz import ServingRecorder

HELLO = [{"role": "user", "content": "hi"}]
MAX_BODY = 64 * 1024  # host.max_body_bytes below: small, so crossing it is cheap
CATALOG = catalogs.catalog(catalogs.SERVING, policy="fit", max_body_bytes=MAX_BODY)
# OpenAI's error type for each status the tables expect.
TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
}


@dataclass
class Case:
    id: str
    path: str
    body: Any = None  # JSON-encoded (NaN and Infinity allowed) unless bytes
    status: int = 400
    param: str | None = None  # the error's param starts with this
    code: str | None = None
    method: str = "POST"
    bug: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes | None:
        if self.body is None or isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()

    def param_case(self) -> Any:
        marks = [pytest.mark.xfail(strict=True, reason=self.bug)] if self.bug else []
        return pytest.param(self, id=self.id, marks=marks)


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "coder-fast", "messages": HELLO, **fields}


def completion(**fields: Any) -> dict[str, Any]:
    return {"model": "coder-fast", "prompt": "hi", **fields}


def image(**fields: Any) -> dict[str, Any]:
    return {"model": "vision-diffusion", "prompt": "a fox", **fields}


def generate(**fields: Any) -> dict[str, Any]:
    return {"prompt": "a fox", **fields}


CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
IMAGES = "/v1/images/generations"
GENERATE = "/vision/generate"

REFUSED_UP_FRONT = [
    # -- the body is not a JSON object
    Case("empty-body", CHAT, b""),
    Case("not-json", CHAT, b"{not json"),
    Case("truncated-json", CHAT, b'{"model": "coder-fast", "messages": ['),
    Case("json-array", CHAT, b"[1, 2]"),
    Case("json-string", CHAT, b'"hello"'),
    Case("json-null", CHAT, b"null"),
    Case("invalid-utf8", CHAT, b"\xff\xfe\x00{"),
    Case("integer-of-5000-digits", CHAT, b'{"max_tokens": 1' + b"0" * 5000 + b"}"),
    Case("nested-20000-deep", CHAT, b"[" * 20000 + b"]" * 20000),
    Case(
        "nested-20000-deep-images",
        GENERATE,
        b'{"prompt": ' + b"[" * 20000 + b"]" * 20000 + b"}",
    ),
    # -- model: missing, wrong type, unknown, elsewhere
    Case("model-missing", CHAT, {"messages": HELLO}, param="model"),
    Case("model-null", CHAT, chat(model=None), param="model"),
    Case("model-int", CHAT, chat(model=5), param="model"),
    Case("model-list", CHAT, chat(model=["coder-fast"]), param="model"),
    Case("model-empty", CHAT, chat(model=""), param="model"),
    Case("model-unknown", CHAT, chat(model="gpt-4"), 404, param="model", code="model_not_found"),
    Case("model-unknown-completions", COMPLETIONS, completion(model="gpt-4"), 404, code="model_not_found"),
    Case(
        "model-of-another-route",
        "/coder/v1/chat/completions",
        chat(model="chat-general"),
        404,
        code="model_not_found",
    ),
    Case("image-model-on-chat", CHAT, chat(model="vision-diffusion"), param="model"),
    Case("chat-on-an-image-route", "/vision/v1/chat/completions", {"messages": HELLO}, param="model"),
    Case("language-model-on-images", IMAGES, image(model="coder-fast"), param="model"),
    # -- chat fields (vLLM's ChatCompletionRequest)
    Case("messages-missing", CHAT, {"model": "coder-fast"}, param="messages"),
    Case("messages-string", CHAT, chat(messages="hi"), param="messages"),
    Case("message-without-role", CHAT, chat(messages=[{"content": "hi"}]), param="messages"),
    Case("message-content-int", CHAT, chat(messages=[{"role": "user", "content": 5}]), param="messages"),
    Case("max_tokens-string", CHAT, chat(max_tokens="many"), param="max_tokens"),
    Case("max_tokens-fraction", CHAT, chat(max_tokens=1.5), param="max_tokens"),
    Case("temperature-string", CHAT, chat(temperature="hot"), param="temperature"),
    Case("n-string", CHAT, chat(n="two"), param="n"),
    Case("stream-not-bool", CHAT, chat(stream="perhaps"), param="stream"),
    Case("stop-int", CHAT, chat(stop=5), param="stop"),
    Case("tools-string", CHAT, chat(tools="x"), param="tools"),
    Case("response_format-unknown", CHAT, chat(response_format={"type": "xml"}), param="response_format"),
    Case("seed-over-int64", CHAT, chat(seed=2**64), param="seed"),
    Case(
        "stream_options-without-stream",
        CHAT,
        chat(stream_options={"include_usage": True}),
    ),
    Case("tool_choice-without-tools", CHAT, chat(tool_choice="required")),
    Case("top_logprobs-without-logprobs", CHAT, chat(top_logprobs=2)),
    # -- completion fields (vLLM's CompletionRequest)
    Case("prompt-missing", COMPLETIONS, {"model": "coder-fast"}),
    Case("prompt-empty", COMPLETIONS, completion(prompt="")),
    Case("prompt-int", COMPLETIONS, completion(prompt=5), param="prompt"),
    Case("prompt-negative-token", COMPLETIONS, completion(prompt=[-1]), param="prompt"),
    Case("prompt-mixed-list", COMPLETIONS, completion(prompt=[[1, "a"]]), param="prompt"),
    Case("completion-max_tokens-string", COMPLETIONS, completion(max_tokens="x"), param="max_tokens"),
    # -- routes, endpoints, methods
    Case("unknown-route", "/nope/v1/chat/completions", {"messages": HELLO}, 404, code="model_not_found"),
    Case("unknown-route-models", "/nope/v1/models", method="GET", status=404, code="model_not_found"),
    Case("route-path-traversal", "/..%2F..%2Fetc/v1/chat/completions", {"messages": HELLO}, 404),
    Case("unknown-endpoint", "/v2/chat/completions", chat(), 404, code="not_found"),
    Case("image-endpoint-on-llm-route", "/coder/generate", generate(), 404, code="not_found"),
    Case("images-api-on-llm-route", "/coder/v1/images/generations", image(), 404, code="not_found"),
    Case("get-on-post-endpoint", CHAT, method="GET", status=405),
    Case("delete-model-list", "/v1/models", method="DELETE", status=405),
    # -- OpenAI images API
    Case("images-prompt-missing", IMAGES, {"model": "vision-diffusion"}, param="prompt"),
    Case("images-prompt-empty", IMAGES, image(prompt="  "), param="prompt"),
    Case("images-prompt-list", IMAGES, image(prompt=["a fox"]), param="prompt"),
    Case("images-unknown-field", IMAGES, image(background="transparent"), param="background"),
    Case("size-words", IMAGES, image(size="big"), param="size"),
    Case("size-int", IMAGES, image(size=1024), param="size"),
    Case("size-zero", IMAGES, image(size="0x0"), param="size"),
    Case("size-negative", IMAGES, image(size="-64x64"), param="size"),
    Case("size-three-sides", IMAGES, image(size="64x64x64"), param="size"),
    Case("size-huge", IMAGES, image(size="9999999x1"), param="size"),
    Case("size-over-max_edge", IMAGES, image(size="512x512"), param="size"),
    Case("size-not-multiple-of-16", IMAGES, image(size="100x96"), param="size"),
    Case("n-zero", IMAGES, image(n=0), param="n"),
    Case("n-negative", IMAGES, image(n=-1), param="n"),
    Case("n-huge", IMAGES, image(n=10**30), param="n"),
    Case("n-over-max_images", IMAGES, image(n=3), param="n"),
    Case("n-string", IMAGES, image(n="2"), param="n"),
    Case("n-bool", IMAGES, image(n=True), param="n"),
    Case("response_format-url", IMAGES, image(response_format="url"), param="response_format"),
    Case("output_format-jpeg", IMAGES, image(output_format="jpeg"), param="output_format"),
    Case("images-unknown-model", IMAGES, image(model="dall-e-3"), 404, code="model_not_found"),
    # -- /{route}/generate
    Case("generate-prompt-missing", GENERATE, {}, param="prompt"),
    Case("generate-prompt-null", GENERATE, {"prompt": None}, param="prompt"),
    Case("width-zero", GENERATE, generate(width=0), param="width"),
    Case("height-negative", GENERATE, generate(height=-16), param="height"),
    Case("width-huge", GENERATE, generate(width=10**30), param="width"),
    Case("width-fraction", GENERATE, generate(width=64.5), param="width"),
    Case("width-string", GENERATE, generate(width="64"), param="width"),
    Case("width-bool", GENERATE, generate(width=True), param="width"),
    Case("height-not-multiple-of-16", GENERATE, generate(height=72), param="height"),
    Case("steps-zero", GENERATE, generate(num_inference_steps=0), param="num_inference_steps"),
    Case("steps-huge", GENERATE, generate(num_inference_steps=10**9), param="num_inference_steps"),
    Case("guidance-nan", GENERATE, generate(guidance_scale=float("nan")), param="guidance_scale"),
    Case("guidance-infinity", GENERATE, generate(guidance_scale=float("inf")), param="guidance_scale"),
    Case("guidance-huge", GENERATE, generate(guidance_scale=1e308), param="guidance_scale"),
    Case("guidance-negative", GENERATE, generate(guidance_scale=-1), param="guidance_scale"),
    Case("seed-negative", GENERATE, generate(seed=-1), param="seed"),
    Case("seed-over-int64", GENERATE, generate(seed=2**64), param="seed"),
    Case("generate-unknown-field", GENERATE, generate(steps=3), param="steps"),
    # -- size of the body (host.max_body_bytes)
    Case(
        "body-over-the-limit",
        CHAT,
        chat(messages=[{"role": "user", "content": "x" * MAX_BODY}]),
        413,
        code="payload_too_large",
    ),
]


@dataclass
class Host:
    client: TestClient
    recorder: ServingRecorder


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    recorder = ServingRecorder(load_seconds=0, stop_seconds=0)
    with TestClient(make_app(CATALOG, factory=recorder.factory), raise_server_exceptions=False) as client:
        client.post(CHAT, json={"model": "coder-fast"})  # imports vLLM's request models once (seconds)
        yield Host(client, recorder)


def check_envelope(response: Any, case: Case, *, openai_types: bool = True) -> dict[str, Any]:
    assert response.status_code == case.status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    if openai_types and case.status in TYPES:
        assert error["type"] == TYPES[case.status], error
    if case.param is not None:
        assert str(error["param"]).startswith(case.param), error
    if case.code is not None:
        assert error["code"] == case.code, error
    return error


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", [c.param_case() for c in REFUSED_UP_FRONT])
def test_refused_up_front_with_a_4xx_envelope(host: Host, case: Case) -> None:
    response = host.client.request(case.method, case.path, content=case.content(), headers=case.headers)
    check_envelope(response, case)
    assert host.recorder.events == [], "a refused request loaded a model"
    assert host.recorder.served == [], "a refused request reached the backend"


def test_oversized_body_without_content_length_is_413(host: Host) -> None:
    """Chunked upload (no Content-Length): the limit holds while the body streams in."""

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 8):
            yield b" " * 1024

    response = host.client.post(CHAT, content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    check_envelope(response, Case("chunked", CHAT, status=413, code="payload_too_large"))
    assert host.recorder.events == []


def test_what_is_accepted_is_served_not_refused() -> None:
    """Controls for the table: a body just under the size limit, and unknown chat fields (vLLM
    ignores them with a warning, as `vllm serve` does), reach the backend."""
    recorder = ServingRecorder(load_seconds=0, stop_seconds=0)
    with TestClient(make_app(CATALOG, factory=recorder.factory), raise_server_exceptions=False) as client:
        near_limit = chat(messages=[{"role": "user", "content": "x" * (MAX_BODY - 200)}])
        assert len(json.dumps(near_limit)) < MAX_BODY
        assert client.post(CHAT, json=near_limit).status_code == 200
        assert client.post(CHAT, json=chat(frobnicate=1)).status_code == 200
        assert client.post(IMAGES, json=image(size="64x64", n=2)).status_code == 200
    assert recorder.served == ["chat.completion coder", "chat.completion coder", "image vision"]


# ---- judged by the engine: one real tiny engine ------------------------------------------

CONTEXT = 32768  # max_model_len of tiny_engine_args()

REFUSED_BY_THE_ENGINE = [
    Case("max_tokens-beyond-context", CHAT, chat(max_tokens=CONTEXT + 8000)),
    Case(
        "max_tokens-beyond-context-completions",
        COMPLETIONS,
        completion(max_tokens=CONTEXT + 8000),
    ),
    Case(
        "prompt-longer-than-context",
        COMPLETIONS,
        completion(prompt=[1] * (CONTEXT + 100), max_tokens=4),
    ),
    Case("max_tokens-huge", CHAT, chat(max_tokens=10**30)),
    Case("max_completion_tokens-int64", CHAT, chat(max_completion_tokens=2**63)),
    Case("max_tokens-negative", CHAT, chat(max_tokens=-1)),
    Case("max_tokens-zero", CHAT, chat(max_tokens=0)),
    Case("temperature-nan", CHAT, chat(temperature=float("nan"))),
    Case("temperature-infinity", CHAT, chat(temperature=float("inf"))),
    Case("temperature-negative", CHAT, chat(temperature=-1)),
    Case("top_p-over-1", CHAT, chat(top_p=2)),
    Case("n-zero", CHAT, chat(n=0)),
    Case("n-huge", CHAT, chat(n=10**9)),
    Case("presence_penalty-over-2", CHAT, chat(presence_penalty=5)),
    Case("top_logprobs-over-limit", CHAT, chat(logprobs=True, top_logprobs=100)),
    Case("messages-empty", CHAT, chat(messages=[])),
    Case("logit_bias-not-a-token-id", CHAT, chat(logit_bias={"abc": 1})),
    Case("prompt-token-out-of-vocab", COMPLETIONS, completion(prompt=[10**9])),
    Case("logprobs-over-limit-completions", COMPLETIONS, completion(logprobs=100)),
    Case("suffix-on-a-model-without-fim", COMPLETIONS, completion(suffix="x"), param="suffix"),
]


@pytest.fixture(scope="module")
def engine_server(tiny_models: Any) -> Iterator[ServerThread]:
    catalog = parse_catalog(tiny_llm_route("coder", tiny_models.llm, "coder-fast"))
    with ServerThread(make_app(catalog)) as server:
        yield server


@pytest.mark.engine
@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", [c.param_case() for c in REFUSED_BY_THE_ENGINE])
def test_refused_by_the_engine_with_a_4xx_envelope(engine_server: ServerThread, case: Case) -> None:
    response = httpx.post(
        f"{engine_server.url}{case.path}",
        content=case.content(),
        headers={"Content-Type": "application/json"},
        timeout=240,  # the first case waits for the engine to start
    )
    # vLLM's own 400s carry its type name ("BadRequestError") and the status as code, as
    # `vllm serve` sends them: the shape is checked, not OpenAI's type names.
    check_envelope(response, case, openai_types=False)


@pytest.mark.engine
@pytest.mark.timeout(300)
def test_the_engine_serves_after_the_refusals(engine_server: ServerThread) -> None:
    response = httpx.post(f"{engine_server.url}{CHAT}", json=chat(max_tokens=4), timeout=240)
    assert response.status_code == 200, response.text
    coder = next(m for m in httpx.get(f"{engine_server.url}/stats").json()["models"] if m["route"] == "coder")
    assert coder["loads"] == 1 and coder["in_flight"] == 0 and coder["waiting"] == 0

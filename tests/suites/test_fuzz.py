"""Schema-driven fuzzing of the public endpoints: a 4xx envelope or a 200, never a 5xx, never a hang.

Hypothesis (derandomized, bounded) generates bodies for chat, completions, the images API
and /{route}/generate: raw bytes, any JSON value, and objects shaped like each endpoint's
schema whose fields take plausible values, wrong types, extremes (NaN, huge integers) or
junk, plus unknown fields. They go to the real app (real routers, real validation with
vLLM's own request models) with a stub backend, so hundreds of bodies take seconds.

What "reached the backend" means here: the fake backend of tests/fakes.py has no serving
objects, so a body that passes every check would end in an AttributeError 500 that says
nothing about the host. `ServingRecorder` adds stub serving objects that answer 200 and
record the call. A 200 therefore means "the host and vLLM's request models accepted it"
(fine: the engine validates sampling values later, see tests/suites/test_bad_input.py), and any
5xx is the host's own failure.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from llmhost.backends.base import ImageJob, ImageResult
from llmhost.config import HostConfig, RouteConfig
from llmhost.server.preload import THREAD_NAME
from tests import catalogs
from tests.apphelp import make_app
from tests.fakes import FakeBackend, Recorder

# ---- a fake backend that can serve --------------------------------------------------------


@dataclass
class _Canned:
    """Stands in for vLLM's response models: the router only calls `model_dump()`."""

    payload: dict[str, Any]

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return self.payload


class _StubServing:
    def __init__(self, backend: ServingBackend) -> None:
        self._backend = backend

    async def create_chat_completion(self, request: Any, raw_request: Any) -> _Canned:
        return self._answer("chat.completion", request)

    async def create_completion(self, request: Any, raw_request: Any) -> _Canned:
        return self._answer("text_completion", request)

    async def create_responses(self, request: Any, raw_request: Any) -> _Canned:
        return self._answer("response", request)

    async def create_messages(self, request: Any, raw_request: Any) -> _Canned:
        return self._answer("message", request)

    async def count_tokens(self, request: Any, raw_request: Any) -> _Canned:
        self._backend.rec.served.append(f"count_tokens {self._backend.route.name}")
        return _Canned({"input_tokens": 1})

    def _answer(self, kind: str, request: Any) -> _Canned:
        self._backend.rec.served.append(f"{kind} {self._backend.route.name}")
        return _Canned({"object": kind, "model": request.model, "choices": []})


class _StubPooling:
    """Stands in for vLLM's ServingEmbedding and ServingScores: a finished JSON response."""

    def __init__(self, backend: ServingBackend, kind: str) -> None:
        self._backend = backend
        self._kind = kind

    async def __call__(self, request: Any, raw_request: Any = None) -> JSONResponse:
        self._backend.rec.served.append(f"{self._kind} {self._backend.route.name}")
        return JSONResponse({"object": "list", "model": request.model, "data": []})


class ServingBackend(FakeBackend):
    """FakeBackend plus stub serving objects (`chat`, `completion`, `responses`, `messages`,
    and the pooling `embedding` and `scores`) and an image `generate`."""

    rec: ServingRecorder

    def __init__(self, route: RouteConfig, recorder: ServingRecorder) -> None:
        super().__init__(route, recorder)
        self.chat = self.completion = self.responses = self.messages = _StubServing(self)
        self.embedding = _StubPooling(self, "embedding")
        self.scores = _StubPooling(self, "rerank")

    async def generate(self, job: ImageJob) -> ImageResult:
        self.rec.served.append(f"image {self.route.name}")
        width, height = job.width or 64, job.height or 64
        return ImageResult(png=[b"stub"] * job.count, width=width, height=height, seed=job.seed, elapsed=0.0)


@dataclass
class ServingRecorder(Recorder):
    served: list[str] = field(default_factory=list)

    def factory(self, route: RouteConfig, host: HostConfig) -> ServingBackend:
        return ServingBackend(route, self)


# ---- the app under test ---------------------------------------------------------------------

# "fit" without NVML keeps every model resident: no swaps between examples.
CATALOG = catalogs.catalog(catalogs.SERVING, policy="fit")


@dataclass
class Fuzzing:
    client: TestClient
    recorder: ServingRecorder


def _after_any_preload() -> None:
    """Wait for the background imports of the apps started so far (llmhost.server.preload).

    Hypothesis reads optional libraries straight out of `sys.modules` without importing
    them (`sys.modules["numpy"].ndarray` when it checks a sample; attr, anyio and others
    too): no import lock stops it from finding numpy half-initialised while the preload
    thread is importing vLLM, and the test then fails with "partially initialized module
    'numpy'". The host itself never reads a module that way: its requests wait for the
    preload's events, and ordinary imports wait on the import lock.
    """
    for thread in threading.enumerate():
        if thread.name == THREAD_NAME:
            thread.join()


@pytest.fixture(scope="module")
def fuzzing() -> Iterator[Fuzzing]:
    recorder = ServingRecorder(load_seconds=0, stop_seconds=0)
    app = make_app(CATALOG, factory=recorder.factory)
    # raise_server_exceptions=False: a 500 comes back as the response a client would see.
    with TestClient(app, raise_server_exceptions=False) as client:
        _after_any_preload()  # before Hypothesis runs (the first request would wait for it anyway)
        yield Fuzzing(client, recorder)


# ---- strategies -------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats()  # NaN and infinities included: the host's JSON parser accepts them
    | st.text(max_size=12)
)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
MODELS = st.sampled_from(
    ["coder-fast", "coder", "chat-general", "chat", "vision-diffusion", "vision", "nope", "", "org/coder"]
)
INTS = st.integers(min_value=-3, max_value=40) | st.sampled_from([0, -1, 2**31, 2**63, 10**30])
FLOATS = st.floats(min_value=-3, max_value=3) | st.sampled_from([float("nan"), float("inf"), 1e308])
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "wizard"])},
    optional={"content": st.text(max_size=12) | ANY_JSON, "name": ANY_JSON, "tool_call_id": ANY_JSON},
)
TOOL = st.fixed_dictionaries(
    {"type": st.just("function")},
    optional={
        "function": st.fixed_dictionaries({"name": st.text(max_size=8)}, optional={"parameters": ANY_JSON})
    },
)


def _field(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any JSON at all (wrong type, null, nesting)."""
    return st.one_of(plausible, plausible, ANY_JSON)


SAMPLING = {
    "max_tokens": _field(INTS),
    "temperature": _field(FLOATS),
    "top_p": _field(FLOATS),
    "n": _field(INTS),
    "seed": _field(INTS),
    "stop": _field(st.text(max_size=4) | st.lists(st.text(max_size=4), max_size=3)),
    "stream": _field(st.booleans()),
    "stream_options": _field(st.fixed_dictionaries({}, optional={"include_usage": st.booleans()})),
    "presence_penalty": _field(FLOATS),
    "logit_bias": _field(st.dictionaries(st.sampled_from(["1", "abc", "-5"]), FLOATS, max_size=2)),
    "user": _field(st.text(max_size=8)),
}
CHAT_FIELDS = {
    "model": _field(MODELS),
    "messages": _field(st.lists(MESSAGE, max_size=3)),
    "max_completion_tokens": _field(INTS),
    "logprobs": _field(st.booleans()),
    "top_logprobs": _field(INTS),
    "tools": _field(st.lists(TOOL, max_size=2)),
    "tool_choice": _field(st.sampled_from(["auto", "none", "required"]) | TOOL),
    "response_format": _field(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "xml"])})
    ),
    **SAMPLING,
}
COMPLETION_FIELDS = {
    "model": _field(MODELS),
    "prompt": _field(st.text(max_size=12) | st.lists(INTS, max_size=4) | st.lists(st.text(max_size=4))),
    "echo": _field(st.booleans()),
    "logprobs": _field(INTS),
    "suffix": _field(st.text(max_size=4)),
    "best_of": _field(INTS),
    **SAMPLING,
}
TUNING = {
    "prompt": _field(st.text(max_size=12)),
    "negative_prompt": _field(st.text(max_size=8)),
    "num_inference_steps": _field(INTS),
    "guidance_scale": _field(FLOATS),
    "seed": _field(INTS),
}
SIZES = st.sampled_from(
    ["64x64", "256x256", "auto", "0x0", "-64x64", "65x64", "4096x64", "64", "x", "9999999x1"]
)
IMAGES_FIELDS = {
    "model": _field(MODELS),
    "n": _field(INTS),
    "size": _field(SIZES | st.text(max_size=9)),
    "response_format": _field(st.sampled_from(["b64_json", "url", "xml"])),
    "output_format": _field(st.sampled_from(["png", "jpeg"])),
    "quality": _field(st.text(max_size=4)),
    **TUNING,
}
GENERATE_FIELDS = {
    "width": _field(st.sampled_from([64, 128, 0, -16, 72, 4096, 10**30])),
    "height": _field(st.sampled_from([64, 128, 0, -16, 72, 4096, 10**30])),
    **TUNING,
}
POOLING_MODELS = MODELS | st.sampled_from(["embedder", "embed", "reranker", "rerank"])
TEXTS = st.text(max_size=12) | st.lists(st.text(max_size=6), max_size=3) | st.lists(INTS, max_size=4)
EMBEDDINGS_FIELDS = {
    "model": _field(POOLING_MODELS),
    "input": _field(TEXTS | st.lists(MESSAGE, max_size=2)),
    "messages": _field(st.lists(MESSAGE, max_size=2)),
    "encoding_format": _field(st.sampled_from(["float", "base64", "bytes", "hex"])),
    "dimensions": _field(INTS),
    "truncate_prompt_tokens": _field(INTS),
    "user": _field(st.text(max_size=8)),
}
RERANK_FIELDS = {
    "model": _field(POOLING_MODELS),
    "query": _field(st.text(max_size=12)),
    "documents": _field(TEXTS),
    "top_n": _field(INTS),
    "max_tokens_per_doc": _field(INTS),
    "instruction": _field(st.text(max_size=8)),
}
UNKNOWN = st.dictionaries(st.sampled_from(["frobnicate", "steps", "background", "x"]), ANY_JSON, max_size=1)


def valid_chat(model: str) -> st.SearchStrategy[dict[str, Any]]:
    user = st.fixed_dictionaries({"role": st.just("user"), "content": st.text(min_size=1, max_size=12)})
    return st.fixed_dictionaries(
        {"model": st.just(model), "messages": st.lists(user, min_size=1, max_size=2)},
        optional={"max_tokens": st.integers(1, 16), "temperature": st.floats(0, 2), "stream": st.booleans()},
    )


def valid_completion(model: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"model": st.just(model), "prompt": st.text(min_size=1, max_size=12)},
        optional={"max_tokens": st.integers(1, 16), "echo": st.booleans()},
    )


def valid_image(model: str | None) -> st.SearchStrategy[dict[str, Any]]:
    base = {"prompt": st.text(min_size=1, max_size=12).filter(str.strip)}
    if model is not None:
        base["model"] = st.just(model)
    return st.fixed_dictionaries(base, optional={"n": st.integers(1, 2), "size": st.just("64x64")})


def valid_embeddings(model: str | None) -> st.SearchStrategy[dict[str, Any]]:
    inputs = st.text(min_size=1, max_size=12) | st.lists(
        st.text(min_size=1, max_size=8), min_size=1, max_size=3
    )
    base: dict[str, Any] = {"input": inputs}
    if model is not None:
        base["model"] = st.just(model)
    return st.fixed_dictionaries(base, optional={"encoding_format": st.sampled_from(["float", "base64"])})


def valid_rerank(model: str | None) -> st.SearchStrategy[dict[str, Any]]:
    base: dict[str, Any] = {
        "query": st.text(min_size=1, max_size=12),
        "documents": st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3),
    }
    if model is not None:
        base["model"] = st.just(model)
    return st.fixed_dictionaries(base, optional={"top_n": st.integers(0, 3)})


VALID_GENERATE = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=12).filter(str.strip)},
    optional={"width": st.just(64), "num_inference_steps": st.integers(1, 8)},
)


def bodies(
    valid: st.SearchStrategy[dict[str, Any]], fields: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[bytes]:
    """A valid body with up to two fields replaced or dropped and maybe an unknown field added
    (most often), any JSON value at all, or raw bytes."""
    keys = st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)
    changes = keys.flatmap(lambda chosen: st.fixed_dictionaries({k: fields[k] for k in chosen}))
    dropped = st.sets(st.sampled_from(sorted(fields)), max_size=1)

    def mutate(base: dict[str, Any], change: dict[str, Any], drop: set[str], extra: dict[str, Any]) -> Any:
        body = {**extra, **base, **change}
        return {k: v for k, v in body.items() if k not in drop}

    shaped = st.builds(mutate, valid, changes, dropped, UNKNOWN)
    as_json = st.one_of(shaped, shaped, shaped, shaped, ANY_JSON).map(lambda v: json.dumps(v).encode())
    return st.one_of(as_json, as_json, as_json, as_json, st.binary(max_size=24))


ENDPOINTS = [
    ("/v1/chat/completions", valid_chat("chat-general"), CHAT_FIELDS),
    ("/openai/v1/chat/completions", valid_chat("coder-fast"), CHAT_FIELDS),
    ("/coder/v1/chat/completions", valid_chat("coder"), CHAT_FIELDS),
    ("/v1/completions", valid_completion("coder-fast"), COMPLETION_FIELDS),
    ("/chat/v1/completions", valid_completion("chat-general"), COMPLETION_FIELDS),
    ("/v1/images/generations", valid_image("vision-diffusion"), IMAGES_FIELDS),
    ("/vision/v1/images/generations", valid_image(None), IMAGES_FIELDS),
    ("/vision/generate", VALID_GENERATE, GENERATE_FIELDS),
    ("/v1/embeddings", valid_embeddings("embedder"), EMBEDDINGS_FIELDS),
    ("/embed/v1/embeddings", valid_embeddings(None), EMBEDDINGS_FIELDS),
    ("/v1/rerank", valid_rerank("reranker"), RERANK_FIELDS),
    ("/rerank/v1/rerank", valid_rerank(None), RERANK_FIELDS),
]


@pytest.mark.parametrize(("path", "valid", "fields"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_fuzzed_bodies_get_a_4xx_envelope_or_200(
    fuzzing: Fuzzing,
    path: str,
    valid: st.SearchStrategy[dict[str, Any]],
    fields: dict[str, st.SearchStrategy[Any]],
) -> None:
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=150,
        derandomize=True,  # the same bodies on every run and machine
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=bodies(valid, fields))
    def one(body: bytes) -> None:
        served_before = len(fuzzing.recorder.served)
        response = fuzzing.client.post(path, content=body, headers={"Content-Type": "application/json"})
        statuses[response.status_code] += 1
        if response.status_code == 200:
            assert len(fuzzing.recorder.served) == served_before + 1, "a 200 that the backend never saw"
            return
        assert len(fuzzing.recorder.served) == served_before, (body, response.text)
        payload = response.json()
        assert set(payload) == {"error"}, (body, response.text)
        assert set(payload["error"]) == {"message", "type", "param", "code"}, (body, response.text)
        assert 400 <= response.status_code < 500, (body, response.status_code, response.text)

    one()
    # The run explored both sides: refusals, and bodies good enough to reach the backend.
    assert sum(n for status, n in statuses.items() if 400 <= status < 500) > 0, statuses
    assert statuses[200] > 0, statuses

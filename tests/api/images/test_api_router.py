"""The image endpoints on the real app with the real tiny SD3 pipeline (no mocks)."""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import json
import weakref
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from PIL import Image

from llmhost.backends.diffusion.backend import DiffusionBackend
from llmhost.config import Catalog, parse_catalog
from llmhost.lifecycle.state import ModelState
from tests.apphelp import WatchedTurn, make_app, running, until_state

KEY = "vision-test-key"


def _catalog(
    sd3: Path,
    *,
    idle: float = 600,
    second: bool = False,
    llm: bool = False,
    auth: str = "none",
    max_edge: int = 128,
) -> Catalog:
    limits = f"""
device = "cpu"
max_edge = {max_edge}
default_steps = 2
max_steps = 4
max_images = 2
max_queue = 2
"""
    text = f"""
[host]
idle_seconds = {idle}
policy = "exclusive"
[routes.vision]
kind = "diffusion"
model = "{sd3}"
served_names = ["vision-diffusion"]
auth = "{auth}"
[routes.vision.pipeline]
{limits}
"""
    if second:
        text += f"""
[routes.sketch]
kind = "diffusion"
model = "{sd3}"
served_names = ["sketch-diffusion"]
[routes.sketch.pipeline]
{limits}
"""
    if llm:
        text += '\n[routes.coder]\nkind = "llm"\nmodel = "org/coder"\nserved_names = ["coder-fast"]\n'
    return parse_catalog(text)


def _png(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert image.format == "PNG"
    return image


def _error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def _state(app: FastAPI, route: str = "vision") -> ModelState:
    state: ModelState = app.state.host.manager.route_state(route)
    return state


def _backend(app: FastAPI, route: str = "vision") -> DiffusionBackend:
    backend = app.state.host.manager.slots[route].backend
    assert isinstance(backend, DiffusionBackend)
    return backend


# ---- /generate and /healthz -----------------------------------------------------------


@pytest.mark.engine
async def test_generate_returns_png_of_size_and_seed_reproduces(tiny_models: Any) -> None:
    app = make_app(_catalog(tiny_models.sd3))
    async with running(app) as client:
        health = (await client.get("/vision/healthz")).json()
        assert health["loaded"] is False and health["state"] == "stopped"
        assert _state(app) is ModelState.STOPPED, "healthz never loads the pipeline"

        request = {"prompt": "a red fox", "width": 64, "height": 48, "seed": 7}
        first = (await client.post("/vision/generate", json=request)).json()
        assert set(first) >= {"image_base64", "elapsed", "seed", "width", "height"}
        assert (first["seed"], first["width"], first["height"]) == (7, 64, 48)
        assert _png(first["image_base64"]).size == (64, 48)
        again = (await client.post("/vision/generate", json=request)).json()
        other = (await client.post("/vision/generate", json={**request, "seed": 8})).json()
        assert again["image_base64"] == first["image_base64"]
        assert other["image_base64"] != first["image_base64"]

        drawn = (await client.post("/vision/generate", json={"prompt": "a red fox"})).json()
        assert isinstance(drawn["seed"], int) and drawn["seed"] >= 0
        assert _png(drawn["image_base64"]).size == (64, 64), "no size: the pipeline's own, within max_edge"
        replay = (
            await client.post("/vision/generate", json={"prompt": "a red fox", "seed": drawn["seed"]})
        ).json()
        assert replay["image_base64"] == drawn["image_base64"]

        health = (await client.get("/vision/healthz")).json()
        assert health["loaded"] is True and health["state"] == "ready"


# ---- OpenAI images API through the openai SDK -----------------------------------------


@pytest.mark.engine
async def test_openai_sdk_images_generate_on_unified_and_route_paths(tiny_models: Any) -> None:
    app = make_app(_catalog(tiny_models.sd3, llm=True))
    async with running(app) as http:
        # The SDK's annotations name httpx2's client; httpx's serves it the same at runtime.
        sdk_http: Any = http
        unified = openai.AsyncOpenAI(
            base_url="http://llmhost/openai/v1", api_key="unused", http_client=sdk_http
        )
        result = await unified.images.generate(
            model="vision-diffusion", prompt="a red fox", n=2, size="64x64", response_format="b64_json"
        )
        assert result.data is not None
        assert result.created > 0 and len(result.data) == 2
        images = [_png(item.b64_json or "") for item in result.data]
        assert [image.size for image in images] == [(64, 64), (64, 64)]
        assert result.data[0].b64_json != result.data[1].b64_json

        per_route = openai.AsyncOpenAI(
            base_url="http://llmhost/vision/v1", api_key="unused", http_client=sdk_http
        )
        result = await per_route.images.generate(prompt="a red fox", size="48x32")
        assert result.data is not None
        assert len(result.data) == 1 and _png(result.data[0].b64_json or "").size == (48, 32)

        # /v1 without a model: the only diffusion route serves it; extensions go in extra_body.
        bare = openai.AsyncOpenAI(base_url="http://llmhost/v1", api_key="unused", http_client=sdk_http)
        seeded = [
            await bare.images.generate(prompt="a red fox", size="64x64", extra_body={"seed": 5})
            for _ in range(2)
        ]
        assert seeded[0].data is not None and seeded[1].data is not None
        assert seeded[0].data[0].b64_json == seeded[1].data[0].b64_json

        with pytest.raises(openai.BadRequestError) as info:
            await unified.images.generate(model="vision-diffusion", prompt="a fox", response_format="url")
        assert info.value.status_code == 400
        assert "b64_json" in info.value.message
        assert isinstance(info.value.body, dict) and info.value.body["param"] == "response_format"


# ---- limits: every one a 400 envelope, and none of them loads the model ----------------

GENERATE_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"prompt": ""}, "prompt", "empty"),
    ({"prompt": "   "}, "prompt", "empty"),
    ({}, "prompt", "required"),
    ({"prompt": 5}, "prompt", "string"),
    ({"prompt": "x", "width": 0}, "width", "positive"),
    ({"prompt": "x", "height": -16}, "height", "positive"),
    ({"prompt": "x", "width": 144}, "width", "limit of 128"),
    ({"prompt": "x", "height": 72}, "height", "multiple of 16"),
    ({"prompt": "x", "width": "64"}, "width", "integer"),
    ({"prompt": "x", "num_inference_steps": 0}, "num_inference_steps", "between 1 and 4"),
    ({"prompt": "x", "num_inference_steps": 5}, "num_inference_steps", "between 1 and 4"),
    ({"prompt": "x", "num_inference_steps": 2.5}, "num_inference_steps", "integer"),
    ({"prompt": "x", "guidance_scale": "high"}, "guidance_scale", "number"),
    ({"prompt": "x", "guidance_scale": -1}, "guidance_scale", "greater than or equal"),
    ({"prompt": "x", "seed": -1}, "seed", "greater than or equal"),
    ({"prompt": "x", "seed": True}, "seed", "integer"),
    ({"prompt": "x", "steps": 3}, "steps", "Unknown field 'steps'"),
]

IMAGES_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"prompt": "x", "n": 0}, "n", "between 1 and 2"),
    ({"prompt": "x", "n": 3}, "n", "between 1 and 2"),
    ({"prompt": "x", "n": "2"}, "n", "integer"),
    ({"prompt": "x", "size": "big"}, "size", "WIDTHxHEIGHT"),
    ({"prompt": "x", "size": "72x64"}, "size", "multiple of 16"),
    ({"prompt": "x", "size": "64x256"}, "size", "limit of 128"),
    ({"prompt": "x", "response_format": "url"}, "response_format", "not supported"),
    ({"prompt": "x", "response_format": "xml"}, "response_format", "b64_json"),
    ({"prompt": "x", "output_format": "jpeg"}, "output_format", "png"),
    ({"prompt": "x", "background": "transparent"}, "background", "Unknown field"),
    ({"prompt": ""}, "prompt", "empty"),
    ({"prompt": "x", "model": "coder-fast"}, "model", "language model"),
]


async def test_each_limit_is_a_400_and_loads_nothing(tiny_models: Any) -> None:
    app = make_app(_catalog(tiny_models.sd3, llm=True))
    async with running(app) as client:
        for body, param, fragment in GENERATE_ERRORS:
            error = _error(await client.post("/vision/generate", json=body))
            assert (error["param"], error["type"]) == (param, "invalid_request_error"), body
            assert fragment in error["message"], (body, error["message"])
        for path in (
            "/vision/v1/images/generations",
            "/openai/v1/images/generations",
            "/v1/images/generations",
        ):
            for body, param, fragment in IMAGES_ERRORS:
                if path.startswith("/vision") and param == "model":
                    continue
                error = _error(await client.post(path, json={"model": "vision-diffusion", **body}))
                assert error["param"] == param, (path, body, error)
                assert fragment in error["message"], (path, body, error["message"])
        invalid_json = await client.post(
            "/vision/generate", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert "not valid JSON" in _error(invalid_json)["message"]
        assert _state(app) is ModelState.STOPPED, "bad requests never load a model"


async def test_model_resolution_and_auth(tiny_models: Any) -> None:
    app = make_app(_catalog(tiny_models.sd3, second=True, llm=True, auth="key"), api_key=KEY)
    async with running(app) as client:
        keyed = {"Authorization": f"Bearer {KEY}"}
        # Two image routes: the unified path needs a model. Without the key, only the
        # open one is named.
        error = _error(await client.post("/v1/images/generations", json={"prompt": "x"}, headers=keyed))
        assert error["param"] == "model" and "vision-diffusion" in error["message"]
        error = _error(await client.post("/v1/images/generations", json={"prompt": "x"}))
        assert "sketch-diffusion" in error["message"] and "vision-diffusion" not in error["message"]
        error = _error(
            await client.post(
                "/openai/v1/images/generations", json={"prompt": "x", "model": "nope"}, headers=keyed
            ),
            404,
        )
        assert error["code"] == "model_not_found"
        # A per-route path serves only its own model.
        body = {"prompt": "x", "model": "vision-diffusion", "n": 0}
        refused = await client.post("/sketch/v1/images/generations", json=body, headers=keyed)
        assert _error(refused, 404)["param"] == "model"
        # Language-model routes have no image endpoints.
        coder_generate = await client.post("/coder/generate", json={"prompt": "x"}, headers=keyed)
        assert _error(coder_generate, 404)["code"] == "not_found"
        assert _error(await client.get("/coder/healthz", headers=keyed), 404)["code"] == "not_found"
        # Without the key a keyed route says nothing about itself.
        assert _error(await client.get("/coder/healthz"), 401)["type"] == "authentication_error"

        # auth = "key" on /vision: the key is checked before anything else.
        for path in ("/vision/generate", "/vision/healthz", "/vision/v1/images/generations"):
            method = client.get if path.endswith("healthz") else client.post
            kwargs: dict[str, Any] = {} if path.endswith("healthz") else {"json": {"prompt": "x"}}
            assert _error(await method(path, **kwargs), 401)["type"] == "authentication_error"
        unified = await client.post(
            "/v1/images/generations", json={"prompt": "x", "model": "vision-diffusion"}
        )
        assert _error(unified, 401)["type"] == "authentication_error"
        # With the key, the request gets as far as validation; sketch (auth none) needs none.
        with_key = await client.post(
            "/vision/generate", json={"prompt": "x", "width": 7}, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert _error(with_key)["param"] == "width"
        assert (await client.get("/sketch/healthz")).status_code == 200
        assert _state(app) is ModelState.STOPPED


# ---- the queue ------------------------------------------------------------------------


@pytest.mark.engine
async def test_full_queue_is_503_with_retry_after(tiny_models: Any) -> None:
    app = make_app(_catalog(tiny_models.sd3))
    async with running(app) as client:
        jobs = app.state.image_queue
        jobs.turn = turn = WatchedTurn()
        body = {"prompt": "a red fox", "num_inference_steps": 1}
        async with jobs.turn:  # the GPU is busy: jobs wait their turn
            queued = [asyncio.create_task(client.post("/vision/generate", json=body)) for _ in range(2)]
            await asyncio.wait_for(turn.queued(2), 60)
            assert jobs.waiting.get("vision") == 2
            full = await client.post("/vision/generate", json=body)
            error = _error(full, 503)
            assert error["code"] == "overloaded" and "max_queue is 2" in error["message"]
            assert int(full.headers["Retry-After"]) >= 1
            health = (await client.get("/vision/healthz")).json()
            assert health["waiting"] == 2
            stats = {m["route"]: m for m in (await client.get("/stats")).json()["models"]}
            assert stats["vision"]["refused"]["overloaded"] == 1  # in /metrics with the others
        done = await asyncio.gather(*queued)
        assert [r.status_code for r in done] == [200, 200]
        assert jobs.waiting["vision"] == 0
        assert (await client.post("/vision/generate", json=body)).status_code == 200


@pytest.mark.engine
async def test_queued_job_of_a_departed_client_is_dropped(tiny_models: Any) -> None:
    app = make_app(_catalog(tiny_models.sd3))
    async with running(app) as client:
        jobs = app.state.image_queue
        jobs.turn = turn = WatchedTurn()
        body = json.dumps({"prompt": "a red fox", "num_inference_steps": 1}).encode()
        gone = asyncio.Event()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if not sent:
                sent.append({})
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/vision/generate",
            "raw_path": b"/vision/generate",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 5000),
            "server": ("llmhost", 80),
            "state": {},
        }
        async with jobs.turn:
            call = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
            # Wait until it is queued: it holds a place, and no lease until its turn.
            await asyncio.wait_for(turn.queued(1), 60)
            assert jobs.waiting.get("vision") == 1
            assert _stats_in_flight(app) == 0
            gone.set()  # the client hangs up while queued
            await asyncio.wait_for(call, 10)
            assert jobs.waiting["vision"] == 0
        statuses = [m["status"] for m in sent if m.get("type") == "http.response.start"]
        assert statuses == [499]
        # The departed client's job never ran: it did not even load the model.
        assert _state(app) is ModelState.STOPPED
        assert (
            await client.post("/vision/generate", json={"prompt": "x", "num_inference_steps": 1})
        ).status_code == 200
        assert _backend(app).jobs_run == 1


def _stats_in_flight(app: FastAPI) -> int:
    return int(next(m for m in app.state.host.manager.snapshot() if m["route"] == "vision")["in_flight"])


# ---- lifecycle: eviction and idle unload ------------------------------------------------


@pytest.mark.engine
async def test_image_request_evicts_the_resident_model_under_exclusive(tiny_models: Any) -> None:
    app = make_app(_catalog(tiny_models.sd3, second=True))
    async with running(app) as client:
        body = {"prompt": "a red fox", "num_inference_steps": 1}
        assert (await client.post("/vision/generate", json=body)).status_code == 200
        first = weakref.ref(_backend(app, "vision").pipeline)
        assert _state(app, "vision") is ModelState.READY
        assert (await client.post("/sketch/generate", json=body)).status_code == 200
        models = {m["route"]: m for m in (await client.get("/stats")).json()["models"]}
        assert models["vision"]["state"] == "stopped" and models["vision"]["evictions"] == 1
        assert models["sketch"]["state"] == "ready" and models["sketch"]["swaps"] == 1
        gc.collect()
        assert first() is None, "the evicted pipeline is gone from memory"


@pytest.mark.engine
async def test_idle_unload_frees_the_pipeline(tiny_models: Any) -> None:
    app = make_app(_catalog(tiny_models.sd3, idle=1))
    async with running(app) as client:
        response = await client.post(
            "/vision/generate", json={"prompt": "a red fox", "num_inference_steps": 1}
        )
        assert response.status_code == 200
        pipeline = weakref.ref(_backend(app).pipeline)
        assert pipeline() is not None
        await asyncio.wait_for(until_state(app.state.host.manager, "vision", ModelState.STOPPED), 30)
        gc.collect()
        assert pipeline() is None, "after the idle unload nothing holds the pipeline"
        assert (await client.get("/vision/healthz")).json()["loaded"] is False


@pytest.mark.engine
async def test_size_beyond_what_the_model_draws_is_a_400(tiny_models: Any) -> None:
    # 256 px passes the route's max_edge but not the tiny transformer's position table (192 px).
    app = make_app(_catalog(tiny_models.sd3, max_edge=512))
    async with running(app) as client:
        refused = await client.post(
            "/vision/generate", json={"prompt": "x", "width": 256, "num_inference_steps": 1}
        )
        error = _error(refused, 400)
        assert "draws at most 192 pixels" in error["message"] and error["param"] == "width"


@pytest.mark.engine
async def test_a_pipeline_error_is_a_500_envelope_and_the_route_keeps_serving(tiny_models: Any) -> None:
    app = make_app(_catalog(tiny_models.sd3, max_edge=128))
    async with running(app) as client:
        ok = await client.post("/vision/generate", json={"prompt": "x", "num_inference_steps": 1})
        assert ok.status_code == 200
        backend = app.state.host.manager.slots["vision"].backend
        real = backend._pipe

        class Broken:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def __call__(self, *args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("CUDA error: an illegal memory access")

        backend._pipe = Broken()
        failed = await client.post("/vision/generate", json={"prompt": "x", "num_inference_steps": 1})
        error = _error(failed, 500)
        assert (
            error["type"] == "server_error"
            and "Generating the image failed: RuntimeError" in error["message"]
        )
        backend._pipe = real
        ok = await client.post("/vision/generate", json={"prompt": "x", "num_inference_steps": 1})
        assert ok.status_code == 200

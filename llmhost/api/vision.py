"""Image endpoints of diffusion routes: `/{route}/generate`, `/{route}/healthz`, and
OpenAI's images API per route (`/{route}/v1/images/generations`) and unified
(`/openai/v1/images/generations`, `/v1/images/generations`, `/openai/images/generations`,
routed by `model`).

A request is checked against its route's limits before any model is touched. Then the
job takes a place in the route's bounded queue (full: 503 with Retry-After), a lease on
the pipeline (loading it if needed) and its turn on the GPU: one image job at a time,
across all diffusion routes. A client that goes away gives up its place; a job whose
client left is never started.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmhost.api.common import (
    HostState,
    host_state,
    json_body,
    resolve_model,
    route_by_path,
    until_disconnected,
)
from llmhost.backends.diffusion import (
    DEFAULT_SIZE_MULTIPLE,
    DiffusionBackend,
    ImageJob,
    ImageResult,
    check_size,
)
from llmhost.config import RouteConfig
from llmhost.errors import HostError, InvalidRequest, ModelUnavailable, Overloaded, RouteNotFound
from llmhost.lifecycle.state import ModelState

log = logging.getLogger("llmhost.vision")
router = APIRouter(tags=["vision"])

MAX_SEED = 2**63 - 1
_DRAWN_SEEDS = 2**32  # a drawn seed stays small enough to read and type back
_SIZE = re.compile(r"^\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*$")

Body = TypeVar("Body", bound=BaseModel)


# ---- request bodies -------------------------------------------------------------------


class _Strict(BaseModel):
    # Unknown fields and wrong types are errors, not silently dropped or coerced.
    model_config = ConfigDict(extra="forbid", strict=True)


class _Tuning(_Strict):
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = Field(None, ge=0, le=50, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)


class GenerateRequest(_Tuning):
    prompt: str
    width: int | None = None
    height: int | None = None


class ImagesRequest(_Tuning):
    """OpenAI's `images.generate` body, plus the /generate tuning fields as extensions."""

    prompt: str
    model: str | None = None
    n: int | None = None
    size: str | None = None
    response_format: str | None = None
    output_format: str | None = None
    # Sent by OpenAI clients; they have no meaning for a diffusion pipeline.
    quality: str | None = None
    style: str | None = None
    user: str | None = None


def _parse(model: type[Body], body: dict[str, Any]) -> Body:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first.get("loc", ())) or None
        if first["type"] == "extra_forbidden":
            accepted = ", ".join(model.model_fields)
            message = f"Unknown field '{param}'. This endpoint accepts: {accepted}."
        elif first["type"] == "missing":
            message = f"'{param}' is required."
        else:
            message = f"Invalid '{param}': {first['msg']}."
        raise InvalidRequest(message, param=param) from None


# ---- the queue ------------------------------------------------------------------------


@dataclass
class ImageJobs:
    """Held on app.state: jobs waiting per route, and the one GPU turn all jobs share."""

    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: dict[str, int] = field(default_factory=dict)
    job_seconds: dict[str, float] = field(default_factory=dict)  # recent duration, for Retry-After

    @contextmanager
    def place(self, route: RouteConfig) -> Iterator[_Place]:
        """A place in the route's queue until the job gets its turn (or gives up)."""
        waiting = self.waiting.get(route.name, 0)
        limit = route.pipeline.max_queue
        if waiting >= limit:
            per_job = self.job_seconds.get(route.name, 10.0)
            raise Overloaded(
                f"{waiting} image jobs are already waiting for {route.primary_id} "
                f"(max_queue is {limit}); try again shortly.",
                retry_after=max(1.0, (waiting + 1) * per_job),
            )
        self.waiting[route.name] = waiting + 1
        place = _Place(self, route.name)
        try:
            yield place
        finally:
            place.leave()

    def record(self, route: RouteConfig, seconds: float) -> None:
        last = self.job_seconds.get(route.name)
        self.job_seconds[route.name] = seconds if last is None else 0.7 * last + 0.3 * seconds


@dataclass
class _Place:
    jobs: ImageJobs
    route: str
    held: bool = True

    def leave(self) -> None:
        if self.held:
            self.held = False
            self.jobs.waiting[self.route] -= 1


def _jobs(request: Request) -> ImageJobs:
    jobs: ImageJobs | None = getattr(request.app.state, "image_jobs", None)
    if jobs is None:
        jobs = request.app.state.image_jobs = ImageJobs()
    return jobs


# ---- validation -----------------------------------------------------------------------


def _image_job(
    route: RouteConfig,
    prompt: str,
    tuning: _Tuning,
    width: int | None,
    height: int | None,
    count: int = 1,
    size_param: str | None = None,
) -> ImageJob:
    """Every limit, checked before a model is leased: a bad request never loads anything."""
    opts = route.pipeline
    if not prompt.strip():
        raise InvalidRequest("'prompt' is empty; describe the image to draw.", param="prompt")
    steps = tuning.num_inference_steps
    if steps is None:
        steps = min(opts.default_steps, opts.max_steps)
    elif not 1 <= steps <= opts.max_steps:
        raise InvalidRequest(
            f"'num_inference_steps' must be between 1 and {opts.max_steps} on this route, not {steps}.",
            param="num_inference_steps",
        )
    if not 1 <= count <= opts.max_images:
        raise InvalidRequest(
            f"'n' must be between 1 and {opts.max_images} on this route, not {count}.", param="n"
        )
    check_size(width, height, opts.max_edge, DEFAULT_SIZE_MULTIPLE, param=size_param)
    guidance = tuning.guidance_scale
    return ImageJob(
        prompt=prompt,
        negative_prompt=tuning.negative_prompt or None,
        width=width,
        height=height,
        steps=steps,
        guidance_scale=opts.default_guidance_scale if guidance is None else guidance,
        seed=secrets.randbelow(_DRAWN_SEEDS) if tuning.seed is None else tuning.seed,
        count=count,
    )


def _parse_size(size: str | None) -> tuple[int | None, int | None]:
    if size is None or size.strip().lower() == "auto":
        return None, None
    match = _SIZE.match(size)
    if match is None:
        raise InvalidRequest(
            f"'size' must be WIDTHxHEIGHT, such as '1024x1024', or 'auto'; got '{size}'.", param="size"
        )
    return int(match.group(1)), int(match.group(2))


def _check_formats(body: ImagesRequest) -> None:
    if body.response_format == "url":
        raise InvalidRequest(
            "response_format 'url' is not supported: this host keeps no images to link to. "
            "Ask for 'b64_json' (the default) and decode the PNG.",
            param="response_format",
        )
    if body.response_format not in (None, "b64_json"):
        raise InvalidRequest(
            f"response_format must be 'b64_json', not '{body.response_format}'.", param="response_format"
        )
    if body.output_format not in (None, "png"):
        raise InvalidRequest(
            f"output_format must be 'png' (the only format produced), not '{body.output_format}'.",
            param="output_format",
        )


# ---- routes and running a job ---------------------------------------------------------


def _diffusion_routes(state: HostState) -> list[RouteConfig]:
    return [r for r in state.catalog.routes.values() if r.kind == "diffusion"]


def _image_paths(state: HostState) -> str:
    return ", ".join(f"/{r.name}" for r in _diffusion_routes(state)) or "none configured"


def _route_for_path(state: HostState, request: Request, name: str) -> RouteConfig:
    route = route_by_path(state, request, name)
    if route.kind != "diffusion":
        raise RouteNotFound(
            f"/{name} is a language-model route; image endpoints are on: {_image_paths(state)}."
        )
    return route


def _route_for_model(
    state: HostState, request: Request, model: str | None, on_route: RouteConfig | None
) -> RouteConfig:
    if model is None and on_route is None:
        routes = _diffusion_routes(state)
        if len(routes) == 1:
            state.keys.require(request, routes[0].auth_mode)
            return routes[0]
        # Name only the image models this caller may use.
        routes = [r for r in routes if r.auth_mode == "none" or state.keys.allows(request)]
        raise InvalidRequest(
            "'model' is required: name one of the image models "
            f"({', '.join(r.primary_id for r in routes) or 'none configured'}).",
            param="model",
        )
    route = resolve_model(state, request, model, on_route)
    if route.kind != "diffusion":
        raise InvalidRequest(
            f"'{model}' is a language model, not an image model; image routes: {_image_paths(state)}.",
            param="model",
        )
    return route


async def _run(request: Request, state: HostState, route: RouteConfig, job: ImageJob) -> ImageResult | None:
    """Queue, lease and run one job; None when the client went away first."""
    jobs = _jobs(request)
    with jobs.place(route) as place:

        async def leased() -> ImageResult:
            async with state.manager.lease(route.name) as lease:
                async with jobs.turn:
                    place.leave()
                    backend = cast(DiffusionBackend, lease.backend)
                    try:
                        result = await backend.generate(job)
                    except ModelUnavailable:
                        if lease.revoked:
                            raise ModelUnavailable(lease.revoked, retry_after=5) from None
                        raise
                    except HostError:
                        raise
                    except Exception as exc:
                        log.exception("%s: image generation failed", route.primary_id)
                        raise HostError(f"Generating the image failed: {type(exc).__name__}: {exc}") from exc
                    jobs.record(route, result.elapsed)
                    return result

        return await until_disconnected(request, leased())


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


@router.post("/openai/v1/images/generations")
@router.post("/v1/images/generations")
@router.post("/openai/images/generations")
async def unified_images(request: Request) -> Any:
    return await _images(request, None)


@router.post("/{route}/v1/images/generations")
async def route_images(route: str, request: Request) -> Any:
    return await _images(request, route)


async def _images(request: Request, on_route: str | None) -> Any:
    state = host_state(request)
    path_route = _route_for_path(state, request, on_route) if on_route is not None else None
    body = _parse(ImagesRequest, await json_body(request))
    route = _route_for_model(state, request, body.model, path_route)
    _check_formats(body)
    width, height = _parse_size(body.size)
    count = 1 if body.n is None else body.n
    job = _image_job(route, body.prompt, body, width, height, count, size_param="size")
    result = await _run(request, state, route, job)
    if result is None:
        return Response(status_code=499)
    return {
        "created": int(time.time()),
        "data": [{"b64_json": _b64(png)} for png in result.png],
        "output_format": "png",
        "seed": result.seed,
    }


@router.post("/{route}/generate")
async def generate(route: str, request: Request) -> Any:
    state = host_state(request)
    config = _route_for_path(state, request, route)
    body = _parse(GenerateRequest, await json_body(request))
    job = _image_job(config, body.prompt, body, body.width, body.height)
    result = await _run(request, state, config, job)
    if result is None:
        return Response(status_code=499)
    return {
        "image_base64": _b64(result.png[0]),
        "elapsed": round(result.elapsed, 3),
        "seed": result.seed,
        "width": result.width,
        "height": result.height,
        "model": config.primary_id,
    }


@router.get("/{route}/healthz")
async def route_healthz(route: str, request: Request) -> dict[str, Any]:
    """Whether the pipeline is loaded; never loads it."""
    state = host_state(request)
    config = _route_for_path(state, request, route)
    model_state = state.manager.route_state(config.name)
    return {
        "status": "ok",
        "route": config.name,
        "model": config.primary_id,
        "loaded": model_state is ModelState.READY,
        "state": model_state.value,
        "waiting": _jobs(request).waiting.get(config.name, 0),
    }

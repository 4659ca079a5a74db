"""Image endpoints of diffusion routes: `/{route}/generate`, `/{route}/healthz`, and
OpenAI's images API per route (`/{route}/v1/images/generations`) and unified
(`/openai/v1/images/generations`, `/v1/images/generations`, `/openai/images/generations`,
routed by `model`).

A request is checked against its route's limits before any model is touched; then it
runs through the image queue (llmhost.api.images.queue).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llmhost.api.body import json_body, parse_body
from llmhost.api.images.protocol import GenerateRequest, ImagesRequest
from llmhost.api.images.queue import image_queue
from llmhost.api.images.serving import generate_answer, images_answer, run_job
from llmhost.api.images.validation import image_job, images_job
from llmhost.api.resolve import image_route_by_path, resolve_image_model
from llmhost.lifecycle.state import ModelState
from llmhost.server.host_state import host_state

router = APIRouter(tags=["vision"])


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
    path_route = image_route_by_path(state, request, on_route) if on_route is not None else None
    body = parse_body(ImagesRequest, await json_body(request))
    route = resolve_image_model(state, request, body.model, path_route)
    result = await run_job(request, state, route, images_job(route, body))
    if result is None:
        return Response(status_code=499)
    return images_answer(result)


@router.post("/{route}/generate")
async def generate(route: str, request: Request) -> Any:
    state = host_state(request)
    config = image_route_by_path(state, request, route)
    body = parse_body(GenerateRequest, await json_body(request))
    job = image_job(config, body.prompt, body, body.width, body.height)
    result = await run_job(request, state, config, job)
    if result is None:
        return Response(status_code=499)
    return generate_answer(config, result)


@router.get("/{route}/healthz")
async def route_healthz(route: str, request: Request) -> dict[str, Any]:
    """Whether the pipeline is loaded; never loads it."""
    state = host_state(request)
    config = image_route_by_path(state, request, route)
    model_state = state.manager.route_state(config.name)
    return {
        "status": "ok",
        "route": config.name,
        "model": config.primary_id,
        "loaded": model_state is ModelState.READY,
        "state": model_state.value,
        "waiting": image_queue(request).waiting.get(config.name, 0),
    }

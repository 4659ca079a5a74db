"""Running an image job: a place in the route's queue, the GPU turn, a lease on the pipeline
(loading it if needed), then the backend's `generate`.

The lease is taken only once the job has its turn: a job that waits behind others holds
nothing, so it neither keeps its model from an idle unload nor makes an eviction drain
wait for it (and be revoked at the drain bound before it even started).
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from fastapi import Request

from llmhost.api.disconnect import until_disconnected
from llmhost.api.images.queue import QueueFull, image_queue
from llmhost.backends.base import ImageBackend, ImageJob, ImageResult
from llmhost.config import RouteConfig
from llmhost.errors import HostError, ModelUnavailable
from llmhost.server.host_state import HostState
from llmhost.server.preload import MODULES_BY_KIND

log = logging.getLogger("llmhost.vision")


async def run_job(
    request: Request, state: HostState, route: RouteConfig, job: ImageJob
) -> ImageResult | None:
    """Queue, lease and run one job; None when the client went away first."""
    try:
        return await _queued(request, state, route, job)
    except QueueFull:
        state.manager.count_refusal(route.name, "overloaded")  # with the manager's own 503s
        raise


async def _queued(
    request: Request, state: HostState, route: RouteConfig, job: ImageJob
) -> ImageResult | None:
    queue = image_queue(request)
    with queue.place(route) as place:

        async def leased() -> ImageResult:
            await _preloaded(state, route)
            async with queue.turn:
                place.leave()
                async with state.manager.lease(route.name) as lease:
                    backend = lease.backend
                    if not isinstance(backend, ImageBackend):
                        raise HostError(f"{route.primary_id} does not generate images.")
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
                    queue.record(route, result.elapsed)
                    return result

        return await until_disconnected(request, leased())


async def _preloaded(state: HostState, route: RouteConfig) -> None:
    """Wait for the background import of the pipeline library (llmhost.server.preload) before the
    lease can start a load: diffusers' lazy module, imported in two threads at once, can
    fail with "cannot import name". The wait counts as waiting, as it does for chat."""
    for name in MODULES_BY_KIND.get(route.kind, ()):
        if name in state.preload.names and not state.preload.ready(name):
            with state.manager.preparing(route.name):
                await state.preload.module(name)


def images_answer(result: ImageResult) -> dict[str, Any]:
    """OpenAI's images response."""
    return {
        "created": int(time.time()),
        "data": [{"b64_json": _b64(png)} for png in result.png],
        "output_format": "png",
        "seed": result.seed,
    }


def generate_answer(route: RouteConfig, result: ImageResult) -> dict[str, Any]:
    """The `/{route}/generate` response."""
    return {
        "image_base64": _b64(result.png[0]),
        "elapsed": round(result.elapsed, 3),
        "seed": result.seed,
        "width": result.width,
        "height": result.height,
        "model": route.primary_id,
    }


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")

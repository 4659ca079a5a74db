"""An image request's limits, checked before any model is leased: a bad request never
loads anything."""

from __future__ import annotations

import re
import secrets

from llmhost.api.images.protocol import ImagesRequest, Tuning
from llmhost.backends.base import ImageJob
from llmhost.config import RouteConfig
from llmhost.config.image_size import DEFAULT_SIZE_MULTIPLE, check_size
from llmhost.errors import InvalidRequest

_DRAWN_SEEDS = 2**32  # a drawn seed stays small enough to read and type back
_SIZE = re.compile(r"^\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*$")


def image_job(
    route: RouteConfig,
    prompt: str,
    tuning: Tuning,
    width: int | None,
    height: int | None,
    count: int = 1,
    size_param: str | None = None,
) -> ImageJob:
    """The job a request asks for, within its route's limits."""
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


def images_job(route: RouteConfig, body: ImagesRequest) -> ImageJob:
    """The job of an OpenAI images request."""
    _check_formats(body)
    width, height = _parse_size(body.size)
    count = 1 if body.n is None else body.n
    return image_job(route, body.prompt, body, width, height, count, size_param="size")


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

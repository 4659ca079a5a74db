"""An image request's limits (llmhost.api.images.validation), checked on the request alone:
each refusal names the field at fault, and a valid request becomes the job its route allows.
The same limits over HTTP, loading nothing, are in test_api_router.py."""

from __future__ import annotations

import pytest

from llmhost.api.images.protocol import ImagesRequest, Tuning
from llmhost.api.images.validation import image_job, images_job
from llmhost.config import RouteConfig
from llmhost.errors import InvalidRequest
from tests import catalogs

VISION = catalogs.catalog(catalogs.SERVING).routes["vision"]  # max_edge 256, max_steps 8, max_images 2


def refusal(route: RouteConfig, **body: object) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        images_job(route, ImagesRequest.model_validate({"prompt": "a cat", **body}))
    return caught.value


def test_a_request_becomes_the_job_its_route_allows() -> None:
    job = images_job(VISION, ImagesRequest(prompt="a cat", size="128x64", n=2, seed=7))
    assert (job.width, job.height, job.count, job.seed) == (128, 64, 2, 7)
    # Unset tuning takes the route's defaults, the steps capped at its maximum.
    assert job.steps == 8 and job.guidance_scale == VISION.pipeline.default_guidance_scale
    assert job.negative_prompt is None
    auto = images_job(VISION, ImagesRequest(prompt="a cat", size="auto"))
    assert (auto.width, auto.height, auto.count) == (None, None, 1)  # the pipeline's own size
    assert 0 <= auto.seed < 2**32  # drawn, and short enough to type back


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"prompt": "  "}, "prompt", "'prompt' is empty"),
        ({"num_inference_steps": 9}, "num_inference_steps", "between 1 and 8 on this route, not 9"),
        ({"num_inference_steps": 0}, "num_inference_steps", "between 1 and 8"),
        ({"n": 3}, "n", "'n' must be between 1 and 2 on this route, not 3"),
        ({"size": "big"}, "size", "WIDTHxHEIGHT"),
        ({"size": "512x512"}, "size", "The width in 'size' is 512, above this route's limit of 256"),
        ({"size": "100x64"}, "size", "multiple of 16; 100 is not (use 96 or 112)"),
        ({"response_format": "url"}, "response_format", "keeps no images to link to"),
        ({"response_format": "jpeg"}, "response_format", "must be 'b64_json'"),
        ({"output_format": "webp"}, "output_format", "must be 'png'"),
    ],
)
def test_each_limit_names_its_field(body: dict[str, object], param: str, says: str) -> None:
    error = refusal(VISION, **body)
    assert error.param == param and says in str(error)


def test_the_generate_endpoint_names_width_and_height_apart() -> None:
    with pytest.raises(InvalidRequest, match="'height' is 512, above") as caught:
        image_job(VISION, "a cat", Tuning(), 64, 512)
    assert caught.value.param == "height"

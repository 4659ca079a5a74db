"""Model resolution's messages: a 404 names every id a client may send, aliases included;
a `model` of the wrong type is called that, not "required"."""

from __future__ import annotations

import pytest

from llmhost.api.resolve import is_image_route
from llmhost.config import parse_catalog
from tests import catalogs
from tests.apphelp import envelope, make_app, running
from tests.fakes import Recorder

CATALOG = parse_catalog(
    """
[routes.coder]
kind = "llm"
model = "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"
served_names = ["coder-fast", "qwen2.5-coder-7b-instruct"]
[routes.chat]
kind = "llm"
model = "org/chat"
[routes.vision]
kind = "diffusion"
model = "org/sd"
served_names = ["vision-diffusion", "sd3.5-medium"]
"""
)
CODER_AND_VISION = catalogs.catalog(catalogs.CODER_AND_VISION)


@pytest.mark.parametrize("path", ["/openai/v1/chat/completions", "/v1/chat/completions"])
async def test_unknown_model_lists_every_served_name(path: str) -> None:
    recorder = Recorder()
    async with running(make_app(CATALOG, factory=recorder.factory)) as client:
        response = await client.post(path, json={"model": "gpt-4", "messages": []})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    known = error["message"].split("Known models: ", 1)[1]
    for model_id in (
        "coder-fast",
        "qwen2.5-coder-7b-instruct",
        "org/chat",
        "vision-diffusion",
        "sd3.5-medium",
    ):
        assert model_id in known, error["message"]
    assert recorder.events == []


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (5, "'model' must be a string, not a number"),
        (["coder-fast"], "'model' must be a string, not an array"),
        (None, "'model' is required"),
        ("", "'model' is required"),
    ],
)
async def test_model_of_the_wrong_type_is_called_that(model: object, expected: str) -> None:
    recorder = Recorder()
    async with running(make_app(CATALOG, factory=recorder.factory)) as client:
        response = await client.post("/openai/v1/chat/completions", json={"model": model, "messages": []})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith(expected), error
    assert error["param"] == "model"
    assert recorder.events == []


def test_the_backend_registry_says_which_routes_draw_images() -> None:
    assert {name: is_image_route(route) for name, route in CATALOG.routes.items()} == {
        "coder": False,
        "chat": False,
        "vision": True,
    }


async def test_unknown_route_and_model_are_404_envelopes() -> None:
    rec = Recorder()
    async with running(make_app(CODER_AND_VISION, factory=rec.factory)) as client:
        response = await client.get("/nope/v1/models")
        assert response.status_code == 404
        assert envelope(response.json())["code"] == "model_not_found"
        response = await client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": []})
        assert response.status_code == 404
        assert envelope(response.json())["code"] == "model_not_found"
        response = await client.post(
            "/coder/v1/chat/completions", json={"model": "vision-diffusion", "messages": []}
        )
        assert response.status_code == 404 and "/vision" in response.json()["error"]["message"]
    assert rec.events == []  # nothing was loaded

"""Request bodies: JSON objects only, and one message style for what a model rejects."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from llmhost.api.body import parse_body
from llmhost.errors import InvalidRequest
from tests import catalogs
from tests.apphelp import envelope, make_app, running
from tests.fakes import Recorder


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str
    steps: int | None = None


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({}, "prompt", "'prompt' is required."),
        ({"prompt": "x", "size": 3}, "size", "Unknown field 'size'. This endpoint accepts: prompt, steps."),
        ({"prompt": "x", "steps": "3"}, "steps", "Invalid 'steps': Input should be a valid integer."),
    ],
)
def test_rejected_fields_are_named(body: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_body(_Body, body)
    assert (info.value.param, info.value.message) == (param, message)


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b""])
async def test_malformed_bodies_are_400(body: bytes) -> None:
    async with running(
        make_app(catalogs.catalog(catalogs.CODER_AND_VISION), factory=Recorder().factory)
    ) as client:
        response = await client.post(
            "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert envelope(response.json())["type"] == "invalid_request_error"

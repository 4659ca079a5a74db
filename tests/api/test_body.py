"""Request bodies: JSON objects only, and one message style for what a model rejects."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from llmhost.api.body import parse_body
from llmhost.errors import InvalidRequest


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

"""Request bodies: the JSON object a POST carries, and its checks against a pydantic model."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from llmhost.errors import InvalidRequest, invalid_body

Body = TypeVar("Body", bound=BaseModel)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, huge ints, deep nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidRequest(f"The request body is not valid JSON: {reason}.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def parse_body(model: type[Body], body: dict[str, Any]) -> Body:
    """`body` as `model`, or the 400 that says what is wrong with it."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_body(exc, model.model_fields) from None

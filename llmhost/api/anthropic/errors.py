"""Anthropic's error shape, `{"type": "error", "error": {"type", "message"}}`, for the
Messages API paths: what the anthropic SDKs and Claude Code parse. Same statuses and
Retry-After headers as everywhere else; only the body differs from OpenAI's envelope."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

from llmhost.errors import HostError

# Anthropic's error types by HTTP status (docs.anthropic.com, "Errors").
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_type(status: int, code: str | None = None) -> str:
    if code in ("overloaded", "shutting_down"):  # retry later: what overloaded_error means
        return "overloaded_error"
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status, code), "message": message}}


def host_error_response(exc: HostError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.status, exc.message, exc.code), status_code=exc.status, headers=exc.headers()
    )


def vllm_error_response(payload: dict[str, Any], status: int) -> JSONResponse:
    """vLLM's ErrorResponse (OpenAI's envelope, already dumped) in Anthropic's shape."""
    error = payload.get("error") or {}
    return JSONResponse(error_body(status, str(error.get("message") or "error")), status_code=status)


def sse_error(status: int, message: str, code: str | None = None) -> str:
    """The `error` event that ends a Messages stream."""
    return f"event: error\ndata: {json.dumps(error_body(status, message, code))}\n\n"

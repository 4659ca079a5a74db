"""Anthropic's error shape, `{"type": "error", "error": {"type", "message"}}`, for the
Messages API paths: what the anthropic SDKs and Claude Code parse. Same statuses and
Retry-After headers as everywhere else; only the body differs from OpenAI's envelope.

Which paths those are is decided here only (`is_anthropic_path`), for the handlers of the
Messages API, the body-size limit (llmhost.server.body_limit) and the errors the app raises
before any handler runs (`install_error_shape`: 404 under /v1/messages, 405, 422, 500)."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from llmhost.errors import HostError, error_response

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

# `/v1/messages` and everything under it, at the top or under one route segment
# (`/{route}/v1/messages`): where an Anthropic client sends its requests, served or not
# (`/v1/messages/batches` is Anthropic's too, and its 404 should read as Anthropic's).
_ANTHROPIC_PATH = re.compile(r"(?:/[^/]+)?/v1/messages(?:/.*)?")


# The request headers of Anthropic's clients that a browser asks CORS about: the key
# (x-api-key), the API version and betas, and the header with which a page acknowledges
# that it holds the key itself (Anthropic's API requires it for CORS).
ANTHROPIC_HEADERS = (
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
)


def is_anthropic_path(path: str) -> bool:
    """Whether an error on `path` is answered in Anthropic's shape."""
    return _ANTHROPIC_PATH.fullmatch(path) is not None


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


def error_response_at(path: str, exc: HostError) -> JSONResponse:
    """`exc` as the response on `path`: Anthropic's shape on its paths, OpenAI's elsewhere."""
    return host_error_response(exc) if is_anthropic_path(path) else error_response(exc)


def vllm_error_response(payload: dict[str, Any], status: int) -> JSONResponse:
    """vLLM's ErrorResponse (OpenAI's envelope, already dumped) in Anthropic's shape."""
    return _reshaped(payload, status, {})


def _reshaped(payload: dict[str, Any], status: int, headers: dict[str, str]) -> JSONResponse:
    """OpenAI's error envelope, as a response in Anthropic's shape with the same status
    and `headers`."""
    error = payload.get("error") or {}
    code = error.get("code")
    message = str(error.get("message") or "error")
    body = error_body(status, message, code if isinstance(code, str) else None)
    return JSONResponse(body, status_code=status, headers=headers)


def sse_error(status: int, message: str, code: str | None = None) -> str:
    """The `error` event that ends a Messages stream."""
    return f"event: error\ndata: {json.dumps(error_body(status, message, code))}\n\n"


# ---- errors raised before any handler runs ---------------------------------------------

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]

# Headers a reshaped body does not keep: JSONResponse sets its own.
_BODY_HEADERS = frozenset({"content-length", "content-type"})


def install_error_shape(app: FastAPI) -> None:
    """Each of the app's error handlers (installed before, llmhost.errors) answers as it
    does, and on an Anthropic path its OpenAI envelope is reshaped into Anthropic's, with
    its status and headers (Allow, Retry-After) kept."""
    for key, handler in list(app.exception_handlers.items()):
        app.exception_handlers[key] = _reshaping(handler)


def _reshaping(handler: Handler) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        response = handler(request, exc)
        if inspect.isawaitable(response):
            response = await response
        if not is_anthropic_path(request.scope.get("path", "")) or not isinstance(response, JSONResponse):
            return response
        payload = json.loads(bytes(response.body))
        if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
            return response
        headers = {k: v for k, v in response.headers.items() if k not in _BODY_HEADERS}
        return _reshaped(payload, response.status_code, headers)

    return handle

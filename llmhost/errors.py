"""Typed errors and the one place that turns them into OpenAI's error envelope.

Every failure a client can see is `{"error": {"message", "type", "param", "code"}}`,
the shape the `openai` SDKs, Open WebUI and Continue parse.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class HostError(Exception):
    """An error with an HTTP status and an OpenAI error type/code."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class InvalidRequest(HostError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(HostError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ModelNotFound(HostError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RouteNotFound(HostError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class PayloadTooLarge(HostError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class ModelUnavailable(HostError):
    """The model could not be loaded (failed, timed out, does not fit): retry later."""

    status = 503
    type = "server_error"
    code = "model_unavailable"


class Overloaded(HostError):
    """Too many requests are already waiting for this model."""

    status = 503
    type = "server_error"
    code = "overloaded"


class ShuttingDown(HostError):
    status = 503
    type = "server_error"
    code = "shutting_down"


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(exc: HostError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.message, exc.type, exc.code, exc.param),
        status_code=exc.status,
        headers=exc.headers(),
    )


_HTTP_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error"}


def _describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "Invalid request.", None
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    message = first.get("msg", "invalid value")
    where = f" at '{param}'" if param else ""
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"Invalid request{where}: {message}{more}.", param


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the OpenAI envelope, here and nowhere else."""

    @app.exception_handler(HostError)
    async def _host_error(_: Request, exc: HostError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _describe_validation(exc)
        return error_response(InvalidRequest(message, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(RouteNotFound("No such endpoint. See GET /routes."))
        error_type = _HTTP_TYPES.get(exc.status_code, "invalid_request_error")
        if exc.status_code >= 500:
            error_type = "server_error"
        return JSONResponse(
            error_body(str(exc.detail), error_type),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body(f"Internal error: {type(exc).__name__}", "server_error"), status_code=500
        )

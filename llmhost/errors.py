"""Typed errors and the one place that turns them into OpenAI's error envelope.

Every failure a client can see is `{"error": {"message", "type", "param", "code"}}`,
the shape the `openai` SDKs, Open WebUI and Continue parse.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
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


class EngineFailed(ModelUnavailable):
    """The model's engine failed under the request (its process was killed, crashed or ran
    out of memory): the host replaces it, and a retry loads it again."""

    code = "engine_failed"


class Overloaded(HostError):
    """Too many requests are already waiting for this model."""

    status = 503
    type = "server_error"
    code = "overloaded"


class ShuttingDown(HostError):
    status = 503
    type = "server_error"
    code = "shutting_down"


class SearchUnavailable(HostError):
    """SearXNG is down, refused, or answered something that is not its JSON."""

    status = 502
    type = "server_error"
    code = "search_unavailable"


class SearchTimeout(HostError):
    status = 504
    type = "server_error"
    code = "search_timeout"


class SearchEnginesFailed(HostError):
    """SearXNG answered, but with no results while its engines failed: not "nothing found"."""

    status = 502
    type = "server_error"
    code = "search_engines_failed"


def error_body(message: str, type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(exc: HostError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.message, exc.type, exc.code, exc.param),
        status_code=exc.status,
        headers=exc.headers(),
    )


# How every error event of a stream begins, vLLM's own and ours (json.dumps of the envelope).
SSE_ERROR_PREFIX = 'data: {"error"'


def sse_event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def sse_error(payload: dict[str, Any]) -> str:
    """An error envelope as the last events of a stream: the error, then `[DONE]`."""
    return f"{sse_event(payload)}data: [DONE]\n\n"


def sse_host_error(exc: HostError) -> str:
    return sse_error(error_body(exc.message, exc.type, exc.code, exc.param))


def sse_host_event(exc: HostError) -> str:
    """The error event alone, for a stream whose `[DONE]` follows anyway."""
    return sse_event(error_body(exc.message, exc.type, exc.code, exc.param))


def invalid_body(
    exc: ValidationError | RequestValidationError,
    accepted: Iterable[str] | None = None,
    rename: Mapping[str, str] | None = None,
) -> InvalidRequest:
    """Every pydantic validation error of a request as one 400, in one message style.

    `accepted`: the fields the endpoint takes, named when a client sends an unknown one;
    `rename`: fields the client knows by another name (a query parameter's).
    """
    errors = exc.errors()
    if not errors:
        return InvalidRequest("Invalid request.")
    first = errors[0]
    param = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or None
    if rename and param is not None and param in rename:
        param = rename[param]
    kind = first.get("type")
    if kind == "extra_forbidden" and param is not None:
        names = f" This endpoint accepts: {', '.join(accepted)}." if accepted is not None else ""
        return InvalidRequest(f"Unknown field '{param}'.{names}", param=param)
    if kind == "missing" and param is not None:
        return InvalidRequest(f"'{param}' is required.", param=param)
    where = f"'{param}'" if param else "request"
    message = first.get("msg", "invalid value")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return InvalidRequest(f"Invalid {where}: {message}{more}.", param=param)


def vllm_client_error(exc: Exception) -> Exception:
    """vLLM's own request errors (max_tokens beyond the context, bad sampling values, ...)
    as the 400 `vllm serve` gives; anything else unchanged."""
    client_error = _vllm_class("vllm.exceptions", "VLLMClientError")
    if client_error is not None and isinstance(exc, client_error):
        message = str(exc.args[0]) if exc.args else type(exc).__name__
        return InvalidRequest(f"Invalid request: {message}", param=getattr(exc, "parameter", None))
    return exc


def vllm_error(exc: Exception, model: str, failure: str | None = None) -> Exception:
    """An error from vLLM's serving objects for a request to `model`, as the host's own.

    A request error is the 400 `vllm serve` gives; a dead engine (`EngineDeadError`) is a
    503 that names the failure (`failure`: the backend's own account of it), not a 500
    "Internal error" logged as unexpected; any other vLLM server error is a 500 naming its
    cause. Anything else comes back unchanged: it is not vLLM's, so it is the host's bug.
    """
    mapped = vllm_client_error(exc)
    if mapped is not exc:
        return mapped
    dead = _vllm_class("vllm.v1.engine.exceptions", "EngineDeadError")
    if dead is not None and isinstance(exc, dead):
        return engine_failed(model, failure)
    server_error = _vllm_class("vllm.exceptions", "VLLMServerError")
    if server_error is not None and isinstance(exc, server_error):
        cause = exc.__cause__ or exc  # EngineGenerateError wraps the real error, with no text
        detail = f": {cause}" if str(cause) else ""
        return HostError(f"{model} could not answer this request: {type(cause).__name__}{detail}")
    return exc


def engine_failed(model: str, failure: str | None) -> EngineFailed:
    """The error of a request whose engine died under it, naming what happened."""
    what = failure or "its engine core process died"
    return EngineFailed(
        f"The engine of {model} failed during this request: {what}. It is being replaced; retry.",
        retry_after=5,
    )


def _vllm_class(module: str, name: str) -> type[BaseException] | None:
    """One of vLLM's exception classes if vLLM is imported, else None: without vLLM imported
    no exception can be of its classes, and checking must never import it (seconds)."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def vllm_error_status(payload: Any) -> int | None:
    """The HTTP status of vLLM's ErrorResponse (already the OpenAI envelope), or None when
    `payload` is an answer."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict) or "message" not in error:
        return None
    code = error.get("code")
    return code if isinstance(code, int) and code >= 400 else 500


_HTTP_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error"}


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the OpenAI envelope, here and nowhere else."""

    @app.exception_handler(HostError)
    async def _host_error(_: Request, exc: HostError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(invalid_body(exc))

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

"""Serving Anthropic's Messages API under a lease with vLLM's `AnthropicServingMessages` of
the route's engine (templating, tool calls and the SSE events with Anthropic's names are
vLLM's); errors in Anthropic's shape (llmhost.api.anthropic.errors)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from llmhost.api.anthropic.errors import sse_error, vllm_error_response
from llmhost.api.anthropic.protocol import Endpoint
from llmhost.api.leased import call_leased
from llmhost.api.streaming import LeasedStream
from llmhost.backends.base import LlmBackend
from llmhost.config import RouteConfig
from llmhost.errors import vllm_error_status
from llmhost.lifecycle.slot import Lease
from llmhost.state import HostState

log = logging.getLogger("llmhost.api")


async def serve(
    request: Request, state: HostState, route: RouteConfig, endpoint: Endpoint, parsed: Any
) -> Response:
    leased = await call_leased(request, state, route, partial(_call, endpoint, parsed, request))
    if leased is None:  # the client went away; cancelling the work aborted it in the engine
        return Response(status_code=499)
    result = leased.result
    if isinstance(result, AsyncIterator):
        return LeasedStream(result, leased.hold, on_error=partial(_stream_broke, leased.lease))
    await leased.hold.aclose()
    payload = result.model_dump(exclude_none=True)
    status = vllm_error_status(payload)
    if status is not None:
        return vllm_error_response(payload, status)
    return JSONResponse(payload)


async def _call(endpoint: Endpoint, parsed: Any, request: Request, backend: LlmBackend) -> Any:
    try:
        if endpoint == "messages":
            return await backend.messages.create_messages(parsed, request)
        return await backend.messages.count_tokens(parsed, request)
    except Exception as exc:
        # As `vllm serve`'s Messages router does: its conversion raises plain exceptions
        # for bad requests (a tool change naming no declared tool, ...); vLLM maps them.
        from vllm.entrypoints.serve.exception_handling.error_response import create_error_response

        error = create_error_response(exc)
        if error.error.code >= 500:
            log.exception("%s failed on %s", endpoint, backend.route.primary_id)
        return error


def _stream_broke(lease: Lease, exc: Exception) -> str:
    message = lease.revoked or (
        f"The stream from {lease.route.primary_id} broke off: {type(exc).__name__}: {exc}"
    )
    return sse_error(500, message)

"""Serving Anthropic's Messages API under a lease with vLLM's `AnthropicServingMessages` of
the route's engine (templating, tool calls and the SSE events with Anthropic's names are
vLLM's); errors in Anthropic's shape (llmhost.api.anthropic.errors).

An engine that dies under a request: not streamed, a 503 that names the failure (with
Retry-After, so the anthropic SDKs retry); streamed, vLLM's converter turns the chat
stream's error into an `error` event whose message is a validation error of its own
parsing, which is replaced by one that names the failure (`_named_errors`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from llmhost.api.anthropic.errors import sse_error, vllm_error_response
from llmhost.api.anthropic.protocol import Endpoint
from llmhost.api.leased import broken_stream, call_leased, engine_gone
from llmhost.api.streaming import LeasedStream
from llmhost.backends.base import LlmBackend
from llmhost.config import RouteConfig
from llmhost.errors import HostError, vllm_error, vllm_error_status
from llmhost.lifecycle.slot import Lease
from llmhost.server.host_state import HostState

log = logging.getLogger("llmhost.api")

# How vLLM's Messages stream (and so any `error` event in it) frames an error event.
ERROR_EVENT_PREFIX = "event: error\n"


async def serve(
    request: Request, state: HostState, route: RouteConfig, endpoint: Endpoint, parsed: Any
) -> Response:
    leased = await call_leased(request, state, route, partial(_call, endpoint, parsed, request))
    if leased is None:  # the client went away; cancelling the work aborted it in the engine
        return Response(status_code=499)
    result = leased.result
    if isinstance(result, AsyncIterator):
        lease = leased.lease
        return LeasedStream(_named_errors(result, lease), leased.hold, on_error=partial(_stream_broke, lease))
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
        # vLLM's own errors (a request error, a dead engine) as the host's, answered in
        # Anthropic's shape by the router.
        mapped = vllm_error(exc, backend.route.primary_id, backend.failure())
        if isinstance(mapped, HostError):
            raise mapped from exc
        # As `vllm serve`'s Messages router does: its conversion raises plain exceptions
        # for bad requests (a tool change naming no declared tool, ...); vLLM maps them.
        from vllm.entrypoints.serve.exception_handling.error_response import create_error_response

        error = create_error_response(exc)
        if error.error.code >= 500:
            log.exception("%s failed on %s", endpoint, backend.route.primary_id)
        return error


async def _named_errors(events: AsyncIterator[str], lease: Lease) -> AsyncIterator[str]:
    """vLLM's Messages events, with an `error` event sent after the engine died or the model
    was unloaded under the request replaced by one that says so; any other passes unchanged."""
    try:
        async for event in events:
            if event.startswith(ERROR_EVENT_PREFIX):
                gone = engine_gone(lease)
                if gone is not None:
                    event = sse_error(gone.status, gone.message, gone.code)
            yield event
    finally:  # closed at once, down to the engine's request (aborted if unfinished)
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


def _stream_broke(lease: Lease, exc: Exception) -> str:
    error = broken_stream(lease, exc)
    return sse_error(error.status, error.message, error.code)

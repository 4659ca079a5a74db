"""Serving /v1/embeddings and /v1/rerank: a validated request, under a lease, handed to the
route's vLLM pooling serving object; its response is vLLM's own (one JSON body, or the
raw bytes of `encoding_format` "bytes"), finished before the lease is released.

The lease is what /stats and /metrics count (in flight, waiting, refused, last hit), as
for every route; the engine's own `vllm:` metrics come with it (llmhost.server.metrics).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from llmhost.api.disconnect import until_disconnected
from llmhost.api.pooling.protocol import Endpoint
from llmhost.api.streaming import LeaseHold
from llmhost.backends.vllm.pooling import PoolingBackend, PoolingServing
from llmhost.config import RouteConfig
from llmhost.errors import HostError, InvalidRequest, vllm_error
from llmhost.server.host_state import HostState


async def serve(
    request: Request, state: HostState, route: RouteConfig, endpoint: Endpoint, parsed: Any
) -> Response:
    """Answer one validated request; a client that leaves meanwhile aborts the work."""
    async with LeaseHold(state.manager, route.name) as hold:
        answer = await until_disconnected(request, _lease_and_call(hold, endpoint, parsed, request))
    return Response(status_code=499) if answer is None else answer


async def _lease_and_call(hold: LeaseHold, endpoint: Endpoint, parsed: Any, request: Request) -> Response:
    lease = await hold.taking  # a refusal (overloaded, load failed, ...) is answered as it is
    serving = _serving(lease.backend, endpoint, lease.route)
    try:
        response: Response = await serving(parsed, request)
    except Exception as exc:
        raise request_error(exc, lease.route.primary_id, lease.backend.failure()) from exc
    return response


def _serving(backend: Any, endpoint: Endpoint, route: RouteConfig) -> PoolingServing:
    serving = None
    if isinstance(backend, PoolingBackend):
        serving = backend.embedding if endpoint == "embeddings" else backend.scores
    if serving is None:
        raise HostError(f"{route.primary_id} does not serve /v1/{endpoint}.")
    return serving


def request_error(exc: Exception, model: str, failure: str | None) -> Exception:
    """vLLM's errors as the host's (llmhost.errors.vllm_error: a request error is a 400, a
    dead engine a 503 naming the failure). vLLM's pooling serving also raises plain
    ValueError, TypeError and OverflowError for checks not yet moved to its own error classes
    (an empty input, a truncation longer than the context), which `vllm serve`'s exception
    handlers answer with a 400: so here too."""
    mapped = vllm_error(exc, model, failure)
    if mapped is exc and isinstance(exc, (ValueError, TypeError, OverflowError)):
        return InvalidRequest(f"Invalid request: {exc}")
    return mapped

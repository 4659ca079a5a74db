"""Serving the LLM endpoints: a validated request, under a lease, handed to vLLM's
serving objects of the route's engine; the model list straight from the configuration.

Loading feedback: with `[host] loading_feedback = true`, a streaming chat request that
has to wait for its lease (a cold start) sees the wait as reasoning deltas
("loading coder-fast… 12 s") before the answer, so Open WebUI shows a live "thinking"
line instead of a frozen spinner. The chunks are ordinary chat.completion.chunk
objects; clients that ignore reasoning ignore them.

That whole response is one stream, as OpenAI's are: one `id` in every chunk and
`role: assistant` in the first chunk only. The progress chunks take the id vLLM will
give its answer (`chatcmpl-` + X-Request-Id or the request's `request_id`); each answer
chunk is checked with a string comparison and rewritten only when its id differs or it
repeats the role, so the common chunk costs no JSON parsing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from llmhost.api.chat.protocol import Endpoint
from llmhost.api.disconnect import until_disconnected
from llmhost.api.leased import llm_backend, serving_error
from llmhost.api.streaming import LeasedStream, LeaseHold
from llmhost.backends.base import ServingResult
from llmhost.backends.vllm.start_report import served_context
from llmhost.config import RouteConfig
from llmhost.errors import (
    HostError,
    engine_failed,
    error_body,
    sse_error,
    sse_event,
    sse_host_error,
    sse_host_event,
    vllm_error_status,
)
from llmhost.lifecycle.slot import Lease
from llmhost.lifecycle.state import ModelState
from llmhost.server.host_state import HostState

log = logging.getLogger("llmhost")

FEEDBACK_INTERVAL_SECONDS = 3.0


# ---- the model list -------------------------------------------------------------------


def model_list(state: HostState, routes: list[RouteConfig]) -> dict[str, Any]:
    # Straight from the configuration: never loads or waits for a model.
    data = [
        _model_card(state, route, model_id)
        for route in routes
        for model_id in (route.served_names or (route.model,))
    ]
    return {"object": "list", "data": data}


def _model_card(state: HostState, route: RouteConfig, model_id: str) -> dict[str, Any]:
    card = {
        "id": model_id,
        "object": "model",
        "created": int(state.started_at),
        "owned_by": "llmhost",
        "root": route.model,
        "parent": None,
        "route": route.name,
        "kind": route.kind,
        "loaded": state.manager.route_state(route.name) is ModelState.READY,
    }
    if route.runs_vllm:  # the context it serves: its last engine's (fitted down?), else the configured
        slot = state.manager.slots.get(route.name)
        card.update(served_context(route, slot.start_report if slot is not None else None))
    return card


# ---- completions ----------------------------------------------------------------------


async def serve(
    request: Request, state: HostState, route: RouteConfig, endpoint: Endpoint, parsed: Any
) -> Response:
    """Answer one validated request: JSON, or a stream that holds the lease until it ends."""
    hold = LeaseHold(state.manager, route.name)
    try:
        response = await _answer(request, state, route, endpoint, parsed, hold)
    except BaseException:
        await hold.aclose()
        raise
    if not isinstance(response, LeasedStream):  # a stream closes the hold when it ends
        await hold.aclose()
    return response


async def _answer(
    request: Request, state: HostState, route: RouteConfig, endpoint: Endpoint, parsed: Any, hold: LeaseHold
) -> Response:
    streaming = bool(getattr(parsed, "stream", False))
    if state.catalog.host.loading_feedback and endpoint == "chat" and streaming:
        await asyncio.sleep(0)  # a lease that is free now is granted in this step
        if not hold.taking.done():  # it has to wait, for a cold start: show the wait
            feedback = _with_feedback(request, route, parsed, hold)
            return _leased_stream(feedback, route, hold)
    # One watcher for the whole wait: the lease, then vLLM's answer or its stream.
    taken = await until_disconnected(request, _lease_and_call(hold, endpoint, parsed, request))
    if taken is None:  # client went away; cancelling the work aborted it in the engine
        return Response(status_code=499)
    _, result = taken
    if isinstance(result, AsyncIterator):
        return _leased_stream(result, route, hold)
    payload = result.model_dump()
    return JSONResponse(payload, status_code=vllm_error_status(payload) or 200)


async def _lease_and_call(
    hold: LeaseHold, endpoint: Endpoint, parsed: Any, request: Request
) -> tuple[Lease, ServingResult]:
    lease = await hold.taking  # a refusal (overloaded, load failed, ...) is answered as it is
    try:
        return lease, await _call(lease, endpoint, parsed, request)
    except Exception as exc:
        raise serving_error(lease, exc) from exc


async def _call(lease: Lease, endpoint: Endpoint, parsed: Any, request: Request) -> ServingResult:
    backend = llm_backend(lease)
    if endpoint == "chat":
        return await backend.chat.create_chat_completion(parsed, request)
    return await backend.completion.create_completion(parsed, request)


def _leased_stream(content: AsyncIterator[str], route: RouteConfig, hold: LeaseHold) -> LeasedStream:
    return LeasedStream(
        content,
        hold,
        on_error=partial(_stream_broke, route, hold),
        on_error_event=partial(_error_event, route, hold),
    )


def _error_event(route: RouteConfig, hold: LeaseHold, event: str) -> str:
    """An error event in the stream (vLLM's stream generators catch the engine's errors and
    send one): when the engine died, or was unloaded under the request, the host's event
    saying so instead of vLLM's "EngineCore encountered an issue. See stack trace (above)";
    any other (a request error vLLM reports in the stream) passes unchanged."""
    lease = hold.lease
    if lease is None:
        return event
    failure = lease.backend.failure()
    if failure is not None:
        return sse_host_event(engine_failed(route.primary_id, failure))
    if lease.revoked is not None:  # unloaded under it (its engine may be gone, and its failure with it)
        return sse_event(error_body(lease.revoked, "server_error", "stream_interrupted"))
    return event


def _stream_broke(route: RouteConfig, hold: LeaseHold, exc: Exception) -> str:
    """The error event that ends a stream that broke off: vLLM's errors as the host's (a dead
    engine named as such), anything else as an interrupted stream."""
    lease = hold.lease
    error = exc if lease is None else serving_error(lease, exc)
    if isinstance(error, HostError):
        return sse_host_error(error)
    message = lease.revoked if lease is not None else None
    if message is None:  # not the lifecycle's doing (that one is logged where it happens)
        message = f"The stream from {route.primary_id} broke off: {type(exc).__name__}: {exc}"
        log.warning("%s", message)
    return sse_error(error_body(message, "server_error", "stream_interrupted"))


# ---- loading feedback -----------------------------------------------------------------


async def _with_feedback(
    request: Request, route: RouteConfig, parsed: Any, hold: LeaseHold
) -> AsyncIterator[str]:
    model = str(parsed.model or route.primary_id)
    chunk_id = _stream_id(request, parsed)
    started = time.monotonic()
    first = True
    while True:
        seconds = time.monotonic() - started
        yield _chunk(chunk_id, model, f"loading {route.primary_id}… {seconds:.0f} s\n", first=first)
        first = False
        done, _ = await asyncio.wait({hold.taking}, timeout=FEEDBACK_INTERVAL_SECONDS)
        if done:
            break
    try:
        lease = hold.taking.result()
    except HostError as exc:
        yield sse_host_error(exc)
        return
    yield _chunk(chunk_id, model, f"{route.primary_id} ready after {time.monotonic() - started:.0f} s\n")
    result = await llm_backend(lease).chat.create_chat_completion(parsed, request)
    if isinstance(result, AsyncIterator):
        prefix = f'data: {{"id":{json.dumps(chunk_id)},'
        async for chunk in result:
            yield continue_stream(chunk, prefix, chunk_id)
    else:  # vLLM's ErrorResponse: already the OpenAI envelope
        yield sse_error(result.model_dump())


def _chunk(chunk_id: str, model: str, text: str, *, first: bool = False) -> str:
    delta = {"role": "assistant", "reasoning": text} if first else {"reasoning": text}
    body = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return f"data: {json.dumps(body)}\n\n"


def _stream_id(request: Request, parsed: Any) -> str:
    """The id vLLM gives this request's chunks (its `_base_request_id`), or a fresh one."""
    header = request.headers.get("X-Request-Id")
    base = header if header is not None else getattr(parsed, "request_id", None)
    return f"chatcmpl-{base or uuid.uuid4().hex}"


def continue_stream(chunk: str, prefix: str, chunk_id: str) -> str:
    """One of vLLM's SSE events as the continuation of our stream: our id, no role."""
    if chunk.startswith(prefix) and '"role"' not in chunk:
        return chunk  # the common case: already ours, nothing to parse
    if not chunk.startswith("data: {") or not chunk.endswith("\n\n"):
        return chunk  # [DONE], or not one event: pass through untouched
    try:
        body = json.loads(chunk[6:])
    except ValueError:
        return chunk
    if not isinstance(body, dict) or "choices" not in body:
        return chunk  # an error event
    body["id"] = chunk_id
    for choice in body["choices"] or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            delta.pop("role", None)
    return f"data: {json.dumps(body, separators=(',', ':'), ensure_ascii=False)}\n\n"

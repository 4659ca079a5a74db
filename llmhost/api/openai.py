"""OpenAI-compatible LLM endpoints: per route (`/{route}/v1/...`) and unified (`/openai/v1`, `/v1`,
and `/openai`, the base URL of the system llmhost replaces).

Requests are validated with vLLM's own protocol models before any model is touched,
then handed, under a lease, to vLLM's serving objects of the route's engine.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from llmhost.api.common import (
    HostState,
    LeasedStream,
    host_state,
    json_body,
    resolve_model,
    route_by_path,
    until_disconnected,
)
from llmhost.api.feedback import stream_with_feedback
from llmhost.config import RouteConfig
from llmhost.errors import InvalidRequest, error_body
from llmhost.lifecycle.slot import Lease
from llmhost.lifecycle.state import ModelState

router = APIRouter()

UNIFIED_PREFIXES = ("/openai/v1", "/v1", "/openai")

_PROTOCOLS = {
    "chat": ("vllm.entrypoints.openai.chat_completion.protocol", "ChatCompletionRequest"),
    "completion": ("vllm.entrypoints.openai.completion.protocol", "CompletionRequest"),
}


async def _request_model(state: HostState, route: RouteConfig, kind: str) -> Any:
    """vLLM's pydantic request class. Imported in the background at start-up (llmhost.preload);
    a request that comes before that is done waits for it, and counts as waiting."""
    module_name, class_name = _PROTOCOLS[kind]
    module = sys.modules.get(module_name)
    if module is None or not state.preload.ready(module_name):
        with state.manager.preparing(route.name):
            module = await state.preload.module(module_name)
    return getattr(module, class_name)


def _model_card(state: HostState, route: RouteConfig, model_id: str) -> dict[str, Any]:
    return {
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


def _model_list(state: HostState, routes: list[RouteConfig]) -> dict[str, Any]:
    # Straight from the configuration: never loads or waits for a model.
    data = [
        _model_card(state, route, model_id)
        for route in routes
        for model_id in (route.served_names or (route.model,))
    ]
    return {"object": "list", "data": data}


def _unified_auth(state: HostState, request: Request) -> None:
    if any(r.auth_mode == "key" for r in state.catalog.routes.values()):
        state.keys.require(request)


async def _list_unified(request: Request) -> dict[str, Any]:
    state = host_state(request)
    _unified_auth(state, request)
    return _model_list(state, list(state.catalog.routes.values()))


async def _list_route(route: str, request: Request) -> dict[str, Any]:
    state = host_state(request)
    return _model_list(state, [route_by_path(state, request, route)])


async def _serve(request: Request, kind: str, on_route: str | None) -> Response:
    state = host_state(request)
    path_route = route_by_path(state, request, on_route) if on_route is not None else None
    body = await json_body(request)
    route = resolve_model(state, request, body.get("model"), path_route)
    if route.kind != "llm":
        raise InvalidRequest(
            f"'{route.primary_id}' is an image model: use POST /v1/images/generations.", param="model"
        )
    body.setdefault("model", route.primary_id)
    request_class = await _request_model(state, route, kind)
    try:
        parsed = request_class.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ())) or None
        raise InvalidRequest(f"Invalid request: {first.get('msg')}.", param=param) from None
    except Exception as exc:
        raise _client_error(exc) from None

    if _wants_feedback(state, route, kind, parsed):
        return StreamingResponse(
            stream_with_feedback(request, state.manager, route, parsed), media_type="text/event-stream"
        )
    lease = await until_disconnected(request, state.manager.acquire(route.name))
    if lease is None:
        return Response(status_code=499)
    try:
        return await _run(request, kind, parsed, lease, state)
    except Exception as exc:
        state.manager.release(lease)
        raise _client_error(exc) from exc
    except BaseException:
        state.manager.release(lease)
        raise


def _client_error(exc: Exception) -> Exception:
    """vLLM's own request errors (max_tokens beyond the context, bad sampling values, ...)
    as the 400 `vllm serve` gives; anything else unchanged."""
    from vllm.exceptions import VLLMClientError  # loaded with the request models already

    if isinstance(exc, VLLMClientError):
        message = str(exc.args[0]) if exc.args else type(exc).__name__
        return InvalidRequest(f"Invalid request: {message}", param=getattr(exc, "parameter", None))
    return exc


def _wants_feedback(state: HostState, route: RouteConfig, kind: str, parsed: Any) -> bool:
    return (
        state.catalog.host.loading_feedback
        and kind == "chat"
        and bool(getattr(parsed, "stream", False))
        and state.manager.route_state(route.name) is not ModelState.READY
    )


async def _run(request: Request, kind: str, parsed: Any, lease: Lease, state: HostState) -> Response:
    backend: Any = lease.backend
    if kind == "chat":
        work = backend.chat.create_chat_completion(parsed, request)
    else:
        work = backend.completion.create_completion(parsed, request)
    result = await until_disconnected(request, work)
    if result is None:  # client went away; cancelling the work aborted it in the engine
        state.manager.release(lease)
        return Response(status_code=499)
    if isinstance(result, AsyncIterator):
        return LeasedStream(_guard(result, lease), lambda: state.manager.release(lease))
    state.manager.release(lease)
    payload = result.model_dump()
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and "message" in error:
        code = error.get("code")
        return JSONResponse(payload, status_code=code if isinstance(code, int) and code >= 400 else 500)
    return JSONResponse(payload)


async def _guard(stream: AsyncIterator[str], lease: Lease) -> AsyncIterator[str]:
    """Pass vLLM's SSE chunks through; if the stream breaks, end it with an error event."""
    try:
        async for chunk in stream:
            yield chunk
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        message = lease.revoked or (
            f"The stream from {lease.route.primary_id} broke off: {type(exc).__name__}: {exc}"
        )
        yield f"data: {json.dumps(error_body(message, 'server_error', 'stream_interrupted'))}\n\n"
        yield "data: [DONE]\n\n"


# ---- routes ---------------------------------------------------------------------------

for _prefix in UNIFIED_PREFIXES:
    router.add_api_route(f"{_prefix}/models", _list_unified, methods=["GET"], tags=["models"])


@router.post("/openai/v1/chat/completions", tags=["llm"])
@router.post("/v1/chat/completions", tags=["llm"])
@router.post("/openai/chat/completions", tags=["llm"])
async def unified_chat(request: Request) -> Response:
    return await _serve(request, "chat", None)


@router.post("/openai/v1/completions", tags=["llm"])
@router.post("/v1/completions", tags=["llm"])
@router.post("/openai/completions", tags=["llm"])
async def unified_completions(request: Request) -> Response:
    return await _serve(request, "completion", None)


router.add_api_route("/{route}/v1/models", _list_route, methods=["GET"], tags=["models"])


@router.post("/{route}/v1/chat/completions", tags=["llm"])
async def route_chat(route: str, request: Request) -> Response:
    return await _serve(request, "chat", route)


@router.post("/{route}/v1/completions", tags=["llm"])
async def route_completions(route: str, request: Request) -> Response:
    return await _serve(request, "completion", route)

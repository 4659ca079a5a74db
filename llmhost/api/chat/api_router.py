"""OpenAI-compatible LLM endpoints: per route (`/{route}/v1/...`) and unified (`/openai/v1`, `/v1`,
and `/openai`, the base URL of the system llmhost replaces)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llmhost.api.chat.protocol import Endpoint, parse_request
from llmhost.api.chat.serving import model_list, serve
from llmhost.api.resolve import route_and_body, route_by_path
from llmhost.server.host_state import HostState, host_state

router = APIRouter()

UNIFIED_PREFIXES = ("/openai/v1", "/v1", "/openai")


def _unified_auth(state: HostState, request: Request) -> None:
    if any(r.auth_mode == "key" for r in state.catalog.routes.values()):
        state.keys.require(request)


async def _list_unified(request: Request) -> dict[str, Any]:
    state = host_state(request)
    _unified_auth(state, request)
    return model_list(state, list(state.catalog.routes.values()))


async def _list_route(route: str, request: Request) -> dict[str, Any]:
    state = host_state(request)
    return model_list(state, [route_by_path(state, request, route)])


async def _serve(request: Request, endpoint: Endpoint, on_route: str | None) -> Response:
    state, route, body = await route_and_body(request, on_route)
    parsed = await parse_request(state, route, endpoint, body)
    return await serve(request, state, route, endpoint, parsed)


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

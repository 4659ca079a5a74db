"""Anthropic's Messages API (Claude Code and the anthropic SDKs speak it):
`POST /v1/messages` routed by `model`, `POST /{route}/v1/messages`, and
`POST …/v1/messages/count_tokens` on both. A client sets `ANTHROPIC_BASE_URL` to the host
(`http://host:8000`, or `http://host:8000/coder` for one route) and a served name as the model.

Every error on these paths is in Anthropic's shape, the key may come as `x-api-key`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llmhost.api.anthropic.errors import host_error_response
from llmhost.api.anthropic.protocol import Endpoint, parse_request
from llmhost.api.anthropic.serving import serve
from llmhost.api.resolve import route_and_body
from llmhost.errors import HostError

router = APIRouter()


async def _serve(request: Request, endpoint: Endpoint, on_route: str | None) -> Response:
    try:
        state, route, body = await route_and_body(request, on_route)
        parsed = await parse_request(state, route, endpoint, body)
        return await serve(request, state, route, endpoint, parsed)
    except HostError as exc:
        return host_error_response(exc)


@router.post("/v1/messages", tags=["anthropic"])
async def unified_messages(request: Request) -> Response:
    return await _serve(request, "messages", None)


@router.post("/v1/messages/count_tokens", tags=["anthropic"])
async def unified_count_tokens(request: Request) -> Response:
    return await _serve(request, "count_tokens", None)


@router.post("/{route}/v1/messages", tags=["anthropic"])
async def route_messages(route: str, request: Request) -> Response:
    return await _serve(request, "messages", route)


@router.post("/{route}/v1/messages/count_tokens", tags=["anthropic"])
async def route_count_tokens(route: str, request: Request) -> Response:
    return await _serve(request, "count_tokens", route)

"""OpenAI's Responses API (Codex CLI speaks it): `POST /{route}/v1/responses` and, routed by
`model`, `POST /openai/v1/responses` and `/v1/responses`.

Responses are not stored for later (see llmhost.api.responses.protocol): retrieving,
cancelling or deleting one by id is answered with a 501 that says so.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llmhost.api.resolve import route_and_body
from llmhost.api.responses.protocol import parse_request
from llmhost.api.responses.serving import serve
from llmhost.errors import HostError
from llmhost.server.host_state import host_state

router = APIRouter()

UNIFIED_PREFIXES = ("/openai/v1", "/v1")


class NotStored(HostError):
    status = 501
    type = "invalid_request_error"
    code = "not_implemented"


async def _serve(request: Request, on_route: str | None) -> Response:
    state, route, body = await route_and_body(request, on_route)
    parsed = await parse_request(state, route, body)
    return await serve(request, state, route, parsed)


async def unified_responses(request: Request) -> Response:
    return await _serve(request, None)


async def route_responses(route: str, request: Request) -> Response:
    return await _serve(request, route)


async def by_id(request: Request) -> Response:
    """GET/DELETE …/responses/{id} and POST …/responses/{id}/cancel."""
    host_state(request).keys.require(request)
    raise NotStored(
        "llmhost does not keep responses to retrieve, cancel or delete by id: each one is "
        "answered in full (or streamed) to the request that created it."
    )


for _prefix in UNIFIED_PREFIXES:
    router.add_api_route(f"{_prefix}/responses", unified_responses, methods=["POST"], tags=["llm"])
router.add_api_route("/{route}/v1/responses", route_responses, methods=["POST"], tags=["llm"])

for _prefix in UNIFIED_PREFIXES:  # not in the API schema: nothing is served there
    for _path, _methods in (("{response_id}", ["GET", "DELETE"]), ("{response_id}/cancel", ["POST"])):
        router.add_api_route(f"{_prefix}/responses/{_path}", by_id, methods=_methods, include_in_schema=False)

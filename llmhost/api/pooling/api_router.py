"""Embeddings and rerank endpoints: unified (`/openai/v1`, `/v1`; routed by `model`) and per
route (`/{route}/v1/...`). Embeddings also answer on `/openai/embeddings`, like the chat
endpoints on `/openai`, the base URL of the system llmhost replaces."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llmhost.api.pooling.protocol import KIND, Endpoint, parse_request
from llmhost.api.pooling.serving import serve
from llmhost.api.resolve import resolve_pooling_model, route_and_body

router = APIRouter()


async def _serve(request: Request, endpoint: Endpoint, on_route: str | None) -> Response:
    resolve = partial(resolve_pooling_model, kind=KIND[endpoint])
    state, route, body = await route_and_body(request, on_route, resolve)
    parsed = await parse_request(state, route, endpoint, body)
    return await serve(request, state, route, endpoint, parsed)


# The unified paths first: `/openai/v1/...` would otherwise match `/{route}/v1/...`.
@router.post("/openai/v1/embeddings", tags=["embeddings"])
@router.post("/v1/embeddings", tags=["embeddings"])
@router.post("/openai/embeddings", tags=["embeddings"])
async def unified_embeddings(request: Request) -> Response:
    return await _serve(request, "embeddings", None)


@router.post("/openai/v1/rerank", tags=["rerank"])
@router.post("/v1/rerank", tags=["rerank"])
async def unified_rerank(request: Request) -> Response:
    return await _serve(request, "rerank", None)


@router.post("/{route}/v1/embeddings", tags=["embeddings"])
async def route_embeddings(route: str, request: Request) -> Response:
    return await _serve(request, "embeddings", route)


@router.post("/{route}/v1/rerank", tags=["rerank"])
async def route_rerank(route: str, request: Request) -> Response:
    return await _serve(request, "rerank", route)

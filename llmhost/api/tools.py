"""`/tools/searxng_search`: web search through the local SearXNG, for agents and tool calls.

A thin, keyed front for SearXNG's JSON API (`/search?format=json`): the model host is
the one address clients know, SearXNG stays on loopback, and results come back in a
small stable shape: `{query, results: [{title, url, content, engine}]}`.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmhost.api.common import host_state, json_body
from llmhost.errors import HostError, InvalidRequest

router = APIRouter(tags=["tools"])


class SearchUnavailable(HostError):
    status = 502
    type = "server_error"
    code = "search_unavailable"


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    max_results: int = Field(5, ge=1, le=50)
    language: str | None = Field(None, max_length=16)
    time_range: str | None = Field(None, pattern="^(day|week|month|year)$")


async def _search(request: Request, search: SearchRequest) -> dict[str, Any]:
    state = host_state(request)
    state.keys.require(request)
    params = {"q": search.query, "format": "json"}
    if search.language:
        params["language"] = search.language
    if search.time_range:
        params["time_range"] = search.time_range
    base = state.settings.searxng_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=15) as client:
            response = await client.get(f"{base}/search", params=params)
    except httpx.HTTPError as exc:
        raise SearchUnavailable(
            f"SearXNG at {base} is unreachable ({type(exc).__name__}); see searxng/README.md.",
            retry_after=30,
        ) from None
    if response.status_code == 403:
        raise SearchUnavailable(f"SearXNG at {base} refused JSON output: add json to search.formats.")
    if response.status_code != 200:
        raise SearchUnavailable(f"SearXNG at {base} answered {response.status_code}.")
    try:
        raw = response.json().get("results", [])
    except ValueError:
        raise SearchUnavailable(f"SearXNG at {base} did not answer JSON.") from None
    results = [
        {
            "title": str(item.get("title", "")),
            "url": str(item.get("url", "")),
            "content": str(item.get("content", "")),
            "engine": item.get("engine"),
        }
        for item in raw[: search.max_results]
        if isinstance(item, dict) and item.get("url")
    ]
    return {"query": search.query, "results": results}


@router.get("/tools/searxng_search")
async def search_get(
    request: Request,
    q: str = Query(min_length=1, max_length=2000),
    max_results: int = Query(5, ge=1, le=50),
) -> dict[str, Any]:
    return await _search(request, SearchRequest(query=q, max_results=max_results))


@router.post("/tools/searxng_search")
async def search_post(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    try:
        search = SearchRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(f"Invalid search request: {first['msg']}.", param=param) from None
    return await _search(request, search)

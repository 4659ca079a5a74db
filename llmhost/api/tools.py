"""`/tools/searxng_search`: web search through the local SearXNG, for agents and tool calls.

A thin, keyed front for SearXNG's JSON API (`/search?format=json`): the model host is
the one address clients know, SearXNG stays on loopback, and results come back in a
small stable shape:

    {query, mode, engines_used, results: [{title, url, snippet, content, engine}],
     unresponsive_engines: [{engine, error}]}

A search mode (models.toml `[search.modes]`) picks the SearXNG engines; mode "auto"
picks the mode from the chat's model name (`[search.auto]`). `content` repeats
`snippet` for clients written before modes existed.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmhost.api.body import json_body
from llmhost.config import SearchConfig
from llmhost.errors import (
    InvalidRequest,
    SearchEnginesFailed,
    SearchTimeout,
    SearchUnavailable,
    invalid_body,
)
from llmhost.server.host_state import HostState, host_state

router = APIRouter(tags=["tools"])

SETUP_HINT = "see searxng/README.md"


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    max_results: int | None = Field(None, ge=1, le=50)
    language: str | None = Field(None, max_length=16)
    time_range: str | None = Field(None, pattern="^(day|week|month|year)$")
    mode: str = Field("auto", min_length=1, max_length=32)
    model: str | None = Field(None, max_length=256)


def resolve_mode(state: HostState, search: SearchRequest) -> str:
    """The mode a request asks for, with "auto" resolved from its model's names."""
    config: SearchConfig = state.catalog.search
    if search.mode != "auto":
        if search.mode not in config.modes:
            choices = ", ".join(["auto", *config.modes])
            raise InvalidRequest(f"Unknown search mode '{search.mode}'; use one of {choices}.", param="mode")
        return search.mode
    if not search.model:
        return config.default_mode
    route = state.catalog.find(search.model)
    # A served name ("general-reasoner") often hides what the model is; its route's
    # model id ("deepseek-ai/DeepSeek-R1-...") says it.
    names = (search.model, route.model) if route is not None else (search.model,)
    return config.mode_for(names)


def _unresponsive(raw: Any) -> list[dict[str, str]]:
    """SearXNG's `[[engine, error], ...]` as `[{engine, error}, ...]`."""
    found = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, (list, tuple)) and item:
            error = str(item[1]) if len(item) > 1 else "unknown error"
            found.append({"engine": str(item[0]), "error": error})
    return found


def _result(item: dict[str, Any]) -> dict[str, Any]:
    snippet = str(item.get("content") or "")
    return {
        "title": str(item.get("title") or ""),
        "url": str(item["url"]),
        "snippet": snippet,
        "content": snippet,
        "engine": item.get("engine"),
    }


async def _search(request: Request, search: SearchRequest) -> dict[str, Any]:
    state = host_state(request)
    config = state.catalog.search
    mode = resolve_mode(state, search)
    engines = config.modes[mode]
    params = {"q": search.query, "format": "json", "engines": ",".join(engines)}
    if search.language:
        params["language"] = search.language
    if search.time_range:
        params["time_range"] = search.time_range
    base = state.settings.searxng_url.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=config.timeout_seconds) as client:
            response = await client.get(f"{base}/search", params=params)
    except httpx.TimeoutException:
        raise SearchTimeout(
            f"SearXNG at {base} did not answer within {config.timeout_seconds:g} s "
            "([search] timeout_seconds in models.toml).",
            retry_after=30,
        ) from None
    except httpx.HTTPError as exc:
        raise SearchUnavailable(
            f"SearXNG at {base} is unreachable ({type(exc).__name__}); is it running? {SETUP_HINT}.",
            retry_after=30,
        ) from None
    if response.status_code == 403:
        raise SearchUnavailable(
            f"SearXNG at {base} refused JSON output (403): enable json in search.formats "
            f"of its settings.yml and restart it; {SETUP_HINT}."
        )
    if response.status_code != 200:
        raise SearchUnavailable(f"SearXNG at {base} answered {response.status_code}; {SETUP_HINT}.")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise SearchUnavailable(f"SearXNG at {base} did not answer a JSON object; {SETUP_HINT}.")
    raw = answer.get("results")
    hits = (
        [item for item in raw if isinstance(item, dict) and item.get("url")] if isinstance(raw, list) else []
    )
    unresponsive = _unresponsive(answer.get("unresponsive_engines"))
    if not hits and unresponsive:
        failed = "; ".join(f"{u['engine']}: {u['error']}" for u in unresponsive)
        rest = [e for e in engines if e not in {u["engine"] for u in unresponsive}]
        others = f" ({', '.join(rest)} found nothing)" if rest else ""
        raise SearchEnginesFailed(
            f"Search '{mode}' got no results because its engines failed{others}: {failed}. "
            "Check that SearXNG can reach the internet; retry later.",
            retry_after=30,
        )
    limit = search.max_results or config.max_results
    return {
        "query": search.query,
        "mode": mode,
        "engines_used": list(engines),
        "results": [_result(item) for item in hits[:limit]],
        "unresponsive_engines": unresponsive,
    }


def _validated(fields: dict[str, Any], rename: dict[str, str] | None = None) -> SearchRequest:
    try:
        return SearchRequest.model_validate(fields)
    except ValidationError as exc:
        raise invalid_body(exc, SearchRequest.model_fields, rename) from None


@router.get("/tools/searxng_search")
async def search_get(request: Request) -> dict[str, Any]:
    """`?q=...&mode=...&model=...&max_results=...&language=...&time_range=...`"""
    host_state(request).keys.require(request)
    params = request.query_params
    # Other parameters are ignored, as FastAPI's query parsing did before modes existed.
    fields: dict[str, Any] = {k: params[k] for k in SearchRequest.model_fields if k in params}
    query = params.get("q", fields.get("query"))
    if query is None:
        raise InvalidRequest("Missing query parameter 'q'.", param="q")
    fields["query"] = query
    search = _validated(fields, {"query": "q"} if "q" in params else None)
    return await _search(request, search)


@router.post("/tools/searxng_search")
async def search_post(request: Request) -> dict[str, Any]:
    """`{query, mode?, model?, max_results?, language?, time_range?}`"""
    host_state(request).keys.require(request)
    return await _search(request, _validated(await json_body(request)))

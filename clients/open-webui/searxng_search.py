"""
title: llmhost web search (SearXNG)
description: Web search through llmhost's SearXNG, in a mode (general, code, research) for the chat's model.
author: llmhost
version: 1.0.0
license: Apache-2.0
"""

# An Open WebUI tool (Workspace > Tools > + > paste this file; see clients/open-webui.md).
# Open WebUI offers every public method of `Tools` to the model as a function, with the
# method's docstring as its description and its `:param` lines as the parameter
# descriptions; arguments named `__x__` are filled in by Open WebUI and never shown to
# the model. No `from __future__ import annotations`: Open WebUI reads the type hints.

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import BaseModel, Field

EventEmitter = Callable[[dict[str, Any]], Awaitable[None]]


class Tools:
    class Valves(BaseModel):
        llmhost_url: str = Field(
            "http://localhost:8000",
            description="llmhost's address as Open WebUI reaches it (no path); "
            "http://host.docker.internal:8000 from Open WebUI in Docker",
        )
        api_key: str = Field("", description="llmhost's VLLM_API_KEY (empty when llmhost has no key)")
        max_results: int = Field(5, ge=1, le=50, description="results per search")
        timeout_seconds: float = Field(30.0, gt=0, description="longest wait for an answer")

    def __init__(self) -> None:
        self.valves = self.Valves()

    async def searxng_search(
        self,
        query: str,
        mode: str = "auto",
        __model__: dict[str, Any] | None = None,
        __metadata__: dict[str, Any] | None = None,
        __event_emitter__: EventEmitter | None = None,
    ) -> str:
        """
        Search the web and return the top results (title, URL and snippet of each). Use it for
        current facts, documentation, error messages, libraries and papers; cite the URLs.
        :param query: What to search for: keywords or a short question.
        :param mode: "code" (GitHub, Stack Overflow) for programming, "research" (arXiv,
            Semantic Scholar) for papers, "general" (web, Wikipedia) for anything else, or
            "auto" to choose from the chat's model.
        """
        model_id = _model_id(__model__, __metadata__)
        body: dict[str, Any] = {"query": query, "mode": mode, "max_results": self.valves.max_results}
        if model_id:
            body["model"] = model_id
        headers = {"Authorization": f"Bearer {self.valves.api_key}"} if self.valves.api_key else {}
        url = self.valves.llmhost_url.rstrip("/") + "/tools/searxng_search"
        await _status(__event_emitter__, f"Searching the web ({mode}): {query}", done=False)
        try:
            async with httpx.AsyncClient(timeout=self.valves.timeout_seconds) as client:
                response = await client.post(url, json=body, headers=headers)
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            await _status(__event_emitter__, "Web search failed", done=True)
            reason = type(exc).__name__
            return f"Web search failed: llmhost at {self.valves.llmhost_url} did not answer ({reason})."
        if response.status_code != 200 or not isinstance(answer, dict) or "results" not in answer:
            error = answer.get("error", {}) if isinstance(answer, dict) else {}
            message = error.get("message") if isinstance(error, dict) else None
            await _status(__event_emitter__, "Web search failed", done=True)
            return f"Web search failed ({response.status_code}): {message or response.text[:300]}"
        await _status(
            __event_emitter__, f"Found {len(answer['results'])} results ({answer.get('mode')})", done=True
        )
        return _as_text(answer)


def _model_id(model: dict[str, Any] | None, metadata: dict[str, Any] | None) -> str | None:
    """The chat's model id as llmhost knows it: a workspace model's base model, else its id."""
    if not model and metadata:
        model = metadata.get("model") if isinstance(metadata.get("model"), dict) else None
    if not model:
        return None
    info = model.get("info") or {}
    base = info.get("base_model_id") if isinstance(info, dict) else None
    found = base or model.get("id")
    return str(found) if found else None


async def _status(emitter: EventEmitter | None, description: str, *, done: bool) -> None:
    if emitter is not None:
        await emitter({"type": "status", "data": {"description": description, "done": done}})


def _as_text(answer: dict[str, Any]) -> str:
    """Results as short numbered text for the model; failed engines noted at the end."""
    results = answer.get("results") or []
    lines = [f"Web results for {answer.get('query')!r} (mode {answer.get('mode')}):"]
    if not results:
        lines.append("No results.")
    for number, result in enumerate(results, 1):
        lines.append(f"{number}. {result.get('title') or result.get('url')}\n   {result.get('url')}")
        snippet = result.get("snippet") or result.get("content")
        if snippet:
            lines.append(f"   {snippet}")
    failed = answer.get("unresponsive_engines") or []
    if failed:
        names = ", ".join(str(item.get("engine")) for item in failed if isinstance(item, dict))
        lines.append(f"(Engines that failed: {names}.)")
    return "\n".join(lines)

"""What every router needs: the host's state, JSON bodies, route lookup, leased streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from llmhost.auth import KeyCheck
from llmhost.config import Catalog, RouteConfig
from llmhost.errors import InvalidRequest, ModelNotFound
from llmhost.gpu import GpuMonitor
from llmhost.lifecycle.manager import ModelManager
from llmhost.preload import Preloader
from llmhost.settings import Settings

T = TypeVar("T")


@dataclass
class HostState:
    """Everything the routers use, created in the app's lifespan and held on app.state."""

    settings: Settings
    catalog: Catalog
    manager: ModelManager
    gpu: GpuMonitor
    keys: KeyCheck
    started_at: float
    preload: Preloader


def host_state(request: Request) -> HostState:
    state: HostState = request.app.state.host
    return state


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, huge ints, deep nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidRequest(f"The request body is not valid JSON: {reason}.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def route_by_path(state: HostState, request: Request, route_name: str) -> RouteConfig:
    """The route of a `/{route}/...` path, once the caller may use it.

    Without the key, an unknown route is a 401 like any keyed one: 404s list the routes,
    and a client without the key must not learn them.
    """
    route = state.catalog.routes.get(route_name)
    if route is None:
        state.keys.require(request)
        raise ModelNotFound(
            f"No route '/{route_name}'. Routes: {', '.join('/' + r for r in state.catalog.routes)}."
        )
    state.keys.require(request, route.auth_mode)
    return route


_JSON_TYPES = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}


def resolve_model(
    state: HostState, request: Request, model: Any, on_route: RouteConfig | None
) -> RouteConfig:
    """The route a request's `model` names, once the caller may use it; on a route path the
    model must be that route's. Unknown or keyed ids without the key are a 401 (see above)."""
    if model is None and on_route is not None:
        return on_route
    if model is not None and not isinstance(model, str):
        raise InvalidRequest(
            f"'model' must be a string, not {_JSON_TYPES.get(type(model), 'that')}: "
            "one of the ids GET /v1/models lists.",
            param="model",
        )
    if not model:
        raise InvalidRequest("'model' is required: one of the ids GET /v1/models lists.", param="model")
    found = state.catalog.find(model)
    if found is None:
        state.keys.require(request)
        # Every id GET /v1/models lists (aliases included); route names are accepted too.
        known = [i for r in state.catalog.routes.values() for i in (r.served_names or (r.model,))]
        raise ModelNotFound(
            f"The model '{model}' does not exist. Known models: {', '.join(known)} (a route name works too).",
            param="model",
        )
    state.keys.require(request, found.auth_mode)
    if on_route is not None and found.name != on_route.name:
        raise ModelNotFound(
            f"The model '{model}' is not served on /{on_route.name}; it is served on "
            f"/{found.name} (or use /openai/v1).",
            param="model",
        )
    return found


async def until_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """Run `work` but give up (cancelling it) if the client disconnects first.

    Call only after the body was read: this consumes the rest of the ASGI receive stream.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    try:
        await task
    except BaseException:  # the client is gone; nothing is waiting for an answer
        pass
    return None


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class LeasedStream(StreamingResponse):
    """A streaming response that calls `release` when it ends, however it ends."""

    def __init__(self, content: AsyncIterator[str | bytes], release: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream")
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()

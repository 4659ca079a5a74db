"""Which route a request means: by its path (`/{route}/...`) or its `model`, once the
caller may use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from llmhost.api.body import json_body
from llmhost.config import RouteConfig
from llmhost.errors import InvalidRequest, ModelNotFound, RouteNotFound
from llmhost.server.host_state import HostState, host_state

_JSON_TYPES = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}


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


# ---- image routes ---------------------------------------------------------------------


def is_image_route(route: RouteConfig) -> bool:
    """Whether the route draws images: configuration says so (its kind), not the backend."""
    return route.draws_images


def image_routes(state: HostState) -> list[RouteConfig]:
    return [r for r in state.catalog.routes.values() if is_image_route(r)]


def _image_paths(state: HostState) -> str:
    return ", ".join(f"/{r.name}" for r in image_routes(state)) or "none configured"


def image_route_by_path(state: HostState, request: Request, name: str) -> RouteConfig:
    route = route_by_path(state, request, name)
    if not is_image_route(route):
        raise RouteNotFound(
            f"/{name} is {_WHAT[_serves(route)]}'s route; image endpoints are on: {_image_paths(state)}."
        )
    return route


def resolve_image_model(
    state: HostState, request: Request, model: str | None, on_route: RouteConfig | None
) -> RouteConfig:
    """The image route a request means; `model` may be left out when only one exists."""
    if model is None and on_route is None:
        routes = image_routes(state)
        if len(routes) == 1:
            state.keys.require(request, routes[0].auth_mode)
            return routes[0]
        # Name only the image models this caller may use.
        routes = [r for r in routes if r.auth_mode == "none" or state.keys.allows(request)]
        raise InvalidRequest(
            "'model' is required: name one of the image models "
            f"({', '.join(r.primary_id for r in routes) or 'none configured'}).",
            param="model",
        )
    route = resolve_model(state, request, model, on_route)
    if not is_image_route(route):
        raise InvalidRequest(
            f"'{model}' is {_WHAT[_serves(route)]}, not an image model; image routes: {_image_paths(state)}.",
            param="model",
        )
    return route


# ---- which endpoint a route serves ----------------------------------------------------

# What each kind of route is, in a client's words, and the endpoint it answers.
_WHAT = {
    "llm": "a language model",
    "image": "an image model",
    "embedding": "an embedding model",
    "rerank": "a reranker",
}
_PLURAL = {"embedding": "embedding models", "rerank": "rerankers"}
_ENDPOINT = {
    "llm": "/v1/chat/completions",
    "image": "/v1/images/generations",
    "embedding": "/v1/embeddings",
    "rerank": "/v1/rerank",
}


def _serves(route: RouteConfig) -> str:
    """llm, image, embedding or rerank: which of the host's APIs the route answers."""
    if is_image_route(route):
        return "image"
    return route.kind if route.pooling else "llm"


def _wrong_endpoint(route: RouteConfig) -> InvalidRequest:
    """The 400 for a request sent to an endpoint the route's model does not serve."""
    serves = _serves(route)
    return InvalidRequest(
        f"'{route.primary_id}' is {_WHAT[serves]}: use POST {_ENDPOINT[serves]}.", param="model"
    )


def resolve_llm_model(
    state: HostState, request: Request, model: Any, on_route: RouteConfig | None
) -> RouteConfig:
    """The language-model route a request means; any other kind is a 400 naming its endpoint."""
    route = resolve_model(state, request, model, on_route)
    if _serves(route) != "llm":
        raise _wrong_endpoint(route)
    return route


def resolve_pooling_model(
    state: HostState, request: Request, model: Any, on_route: RouteConfig | None, kind: str
) -> RouteConfig:
    """The `kind` ("embedding" or "rerank") route a request means; on the unified endpoint
    `model` may be left out when only one route of that kind exists. Any other kind is a
    400 naming the endpoint its model serves."""
    if model is None and on_route is None:
        routes = [r for r in state.catalog.routes.values() if r.kind == kind]
        if len(routes) == 1:
            state.keys.require(request, routes[0].auth_mode)
            return routes[0]
        routes = [r for r in routes if r.auth_mode == "none" or state.keys.allows(request)]
        raise InvalidRequest(
            f"'model' is required: name one of the {_PLURAL[kind]} "
            f"({', '.join(r.primary_id for r in routes) or 'none configured'}).",
            param="model",
        )
    route = resolve_model(state, request, model, on_route)
    if route.kind != kind:
        raise _wrong_endpoint(route)
    return route


Resolver = Callable[[HostState, Request, Any, RouteConfig | None], RouteConfig]


async def route_and_body(
    request: Request, on_route: str | None, resolve: Resolver = resolve_llm_model
) -> tuple[HostState, RouteConfig, dict[str, Any]]:
    """For an endpoint routed by its path (`on_route`, None on the unified paths) or by its
    body's `model`: the host state, the route `resolve` finds the request means, and the
    JSON body."""
    state = host_state(request)
    path_route = route_by_path(state, request, on_route) if on_route is not None else None
    body = await json_body(request)
    return state, resolve(state, request, body.get("model"), path_route), body

"""The request bodies of /v1/embeddings and /v1/rerank: vLLM's own protocol models
(`EmbeddingRequest`, a union of the plain and chat-shaped inputs; `RerankRequest`), so a
request is checked exactly as `vllm serve` checks it, before any model is touched."""

from __future__ import annotations

import re
import sys
from functools import partial
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError
from pydantic_core import InitErrorDetails

from llmhost.api import vllm_protocol
from llmhost.config import RouteConfig
from llmhost.server.host_state import HostState

Endpoint = Literal["embeddings", "rerank"]

# Which route kind answers each endpoint.
KIND: dict[Endpoint, str] = {"embeddings": "embedding", "rerank": "rerank"}

_PROTOCOLS: dict[Endpoint, tuple[str, str]] = {
    "embeddings": ("vllm.entrypoints.pooling.embed.protocol", "EmbeddingRequest"),
    "rerank": ("vllm.entrypoints.pooling.scoring.protocol", "RerankRequest"),
}
_ADAPTERS: dict[Endpoint, TypeAdapter[Any]] = {}


async def _adapter(state: HostState, route: RouteConfig, endpoint: Endpoint) -> TypeAdapter[Any]:
    """A validator for vLLM's request type (EmbeddingRequest is an annotated union, not a
    class). Its module is imported in the background at start-up (llmhost.server.preload); a
    request that comes before that is done waits for it, and counts as waiting."""
    adapter = _ADAPTERS.get(endpoint)
    if adapter is not None:
        return adapter
    module_name, type_name = _PROTOCOLS[endpoint]
    module = await vllm_protocol.preloaded(state, route, module_name)
    adapter = _ADAPTERS[endpoint] = TypeAdapter(getattr(module, type_name))
    return adapter


async def parse_request(
    state: HostState, route: RouteConfig, endpoint: Endpoint, body: dict[str, Any]
) -> Any:
    """`body` as vLLM's request model, or the 400 that says what is wrong with it."""
    body.setdefault("model", route.primary_id)
    adapter = await _adapter(state, route, endpoint)
    return vllm_protocol.validate(adapter.validate_python, body, partial(_explained, endpoint, body))


# ---- errors a client can read ---------------------------------------------------------

_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _explained(endpoint: Endpoint, body: dict[str, Any], exc: ValidationError) -> ValidationError:
    """The errors of the one request shape the body is meant as, with field paths only.

    EmbeddingRequest is a union (plain `input`, or chat `messages`): its errors repeat for
    every member and carry pydantic's member and type tags in their paths
    ("function-wrap[...].input.list[int]"). The body's own shape picks the member whose
    errors are worth reading; the tags are dropped from the paths."""
    if endpoint == "embeddings":
        module = sys.modules[_PROTOCOLS[endpoint][0]]
        if "messages" in body:
            member = module.EmbeddingChatRequest
        elif _chat_shaped(body.get("input")):
            member = module.EmbeddingChatInputRequest
        else:
            member = module.EmbeddingCompletionRequest
        try:
            member.model_validate(body)
        except ValidationError as narrower:
            exc = narrower
    details: list[InitErrorDetails] = []
    for error in exc.errors():
        loc = tuple(
            p for p in error["loc"] if isinstance(p, int) or (_FIELD.match(p) and p not in _TYPE_TAGS)
        )
        detail: InitErrorDetails = {"type": error["type"], "loc": loc, "input": error.get("input")}
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    return ValidationError.from_exception_data(exc.title, details)


def _chat_shaped(value: Any) -> bool:
    """`input` given as chat messages (a list of {"role": ...}), which vLLM also accepts."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], (dict, list))

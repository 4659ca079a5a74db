"""The request bodies of the LLM endpoints: vLLM's own protocol models, so a request is
checked exactly as `vllm serve` checks it, before any model is touched."""

from __future__ import annotations

from typing import Any, Literal

from llmhost.api import vllm_protocol
from llmhost.config import RouteConfig
from llmhost.server.host_state import HostState

Endpoint = Literal["chat", "completion"]

_PROTOCOLS: dict[Endpoint, tuple[str, str]] = {
    "chat": ("vllm.entrypoints.openai.chat_completion.protocol", "ChatCompletionRequest"),
    "completion": ("vllm.entrypoints.openai.completion.protocol", "CompletionRequest"),
}


async def _request_class(state: HostState, route: RouteConfig, endpoint: Endpoint) -> Any:
    """vLLM's pydantic request class, from the module the start-up preload imports."""
    module_name, class_name = _PROTOCOLS[endpoint]
    return getattr(await vllm_protocol.preloaded(state, route, module_name), class_name)


async def parse_request(
    state: HostState, route: RouteConfig, endpoint: Endpoint, body: dict[str, Any]
) -> Any:
    """`body` as vLLM's request model, or the 400 that says what is wrong with it."""
    body.setdefault("model", route.primary_id)
    request_class = await _request_class(state, route, endpoint)
    return vllm_protocol.validate(request_class.model_validate, body)

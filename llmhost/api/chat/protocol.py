"""The request bodies of the LLM endpoints: vLLM's own protocol models, so a request is
checked exactly as `vllm serve` checks it, before any model is touched."""

from __future__ import annotations

import sys
from typing import Any, Literal

from pydantic import ValidationError

from llmhost.config import RouteConfig
from llmhost.errors import invalid_body, vllm_client_error
from llmhost.server.host_state import HostState

Endpoint = Literal["chat", "completion"]

_PROTOCOLS: dict[Endpoint, tuple[str, str]] = {
    "chat": ("vllm.entrypoints.openai.chat_completion.protocol", "ChatCompletionRequest"),
    "completion": ("vllm.entrypoints.openai.completion.protocol", "CompletionRequest"),
}


async def _request_class(state: HostState, route: RouteConfig, endpoint: Endpoint) -> Any:
    """vLLM's pydantic request class. Imported in the background at start-up (llmhost.server.preload);
    a request that comes before that is done waits for it, and counts as waiting."""
    module_name, class_name = _PROTOCOLS[endpoint]
    module = sys.modules.get(module_name)
    if module is None or not state.preload.ready(module_name):
        with state.manager.preparing(route.name):
            module = await state.preload.module(module_name)
    return getattr(module, class_name)


async def parse_request(
    state: HostState, route: RouteConfig, endpoint: Endpoint, body: dict[str, Any]
) -> Any:
    """`body` as vLLM's request model, or the 400 that says what is wrong with it."""
    body.setdefault("model", route.primary_id)
    request_class = await _request_class(state, route, endpoint)
    try:
        return request_class.model_validate(body)
    except ValidationError as exc:
        raise invalid_body(exc) from None
    except Exception as exc:
        raise vllm_client_error(exc) from None

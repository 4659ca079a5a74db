"""The bodies of `POST /v1/messages` and `/v1/messages/count_tokens`: vLLM's own Anthropic
request models, so a request is checked exactly as `vllm serve` checks it."""

from __future__ import annotations

from typing import Any, Literal

from llmhost.api import vllm_protocol
from llmhost.config import RouteConfig
from llmhost.server.host_state import HostState

MODULE = "vllm.entrypoints.anthropic.protocol"

Endpoint = Literal["messages", "count_tokens"]

_CLASSES: dict[Endpoint, str] = {
    "messages": "AnthropicMessagesRequest",
    "count_tokens": "AnthropicCountTokensRequest",
}


async def parse_request(
    state: HostState, route: RouteConfig, endpoint: Endpoint, body: dict[str, Any]
) -> Any:
    return await vllm_protocol.parse(state, route, MODULE, _CLASSES[endpoint], body)

"""The body of `POST …/v1/responses`: vLLM's own `ResponsesRequest`, and the parts of the
Responses API llmhost does not serve, refused before any model is touched."""

from __future__ import annotations

from typing import Any

from llmhost.api import vllm_protocol
from llmhost.config import RouteConfig
from llmhost.errors import InvalidRequest
from llmhost.server.host_state import HostState

MODULE = "vllm.entrypoints.openai.responses.protocol"
STORE_SETTING = "VLLM_ENABLE_RESPONSES_API_STORE"


async def parse_request(state: HostState, route: RouteConfig, body: dict[str, Any]) -> Any:
    parsed = await vllm_protocol.parse(state, route, MODULE, "ResponsesRequest", body)
    if parsed.background:
        # vLLM runs a background response as a task of its own, after the HTTP request
        # ended: outside any lease, so the model could be unloaded under it.
        raise InvalidRequest(
            "'background' responses are not supported by llmhost: send the request without "
            "'background' (streaming works).",
            param="background",
            code="unsupported_parameter",
        )
    if parsed.previous_response_id is not None and not store_enabled():
        raise previous_response_not_found(parsed.previous_response_id, stored=False)
    return parsed


def store_enabled() -> bool:
    """vLLM's own switch for its in-memory response store (off by default)."""
    import vllm.envs as envs

    return bool(getattr(envs, STORE_SETTING))


def previous_response_not_found(response_id: str, *, stored: bool) -> InvalidRequest:
    """The 400 for a `previous_response_id` the route's engine does not hold (OpenAI's own
    code for it), with the reason: no store at all, or a store that went with the engine."""
    if stored:
        why = (
            "stored responses live in the model's engine and are gone once it unloads (idle "
            "unload, a swap to another model, a reload), or the response was created with "
            "'store': false"
        )
    else:
        why = f"llmhost keeps no responses (vLLM's store is off; {STORE_SETTING}=1 turns it on)"
    return InvalidRequest(
        f"Previous response '{response_id}' not found: {why}. "
        "Send the conversation so far as 'input' instead.",
        param="previous_response_id",
        code="previous_response_not_found",
    )

"""Serving `POST …/v1/responses` under a lease with vLLM's `OpenAIServingResponses` of the
route's engine: its answer as JSON, or its stream of events as SSE in vLLM's own framing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from llmhost.api.leased import broken_stream, call_leased
from llmhost.api.responses.protocol import previous_response_not_found
from llmhost.api.streaming import LeasedStream
from llmhost.config import RouteConfig
from llmhost.errors import error_response, vllm_error_status
from llmhost.lifecycle.slot import Lease
from llmhost.server.host_state import HostState


async def serve(request: Request, state: HostState, route: RouteConfig, parsed: Any) -> Response:
    leased = await call_leased(
        request, state, route, lambda backend: backend.responses.create_responses(parsed, request)
    )
    if leased is None:  # the client went away; cancelling the work aborted it in the engine
        return Response(status_code=499)
    result = leased.result
    if isinstance(result, AsyncIterator):
        return LeasedStream(_sse(result, leased.lease), leased.hold)
    await leased.hold.aclose()
    payload = result.model_dump(mode="json", by_alias=True)
    status = vllm_error_status(payload)
    if status == 404 and parsed.previous_response_id is not None:
        # vLLM's store (on) does not hold it: this engine never saw it, or it was unloaded.
        return error_response(previous_response_not_found(parsed.previous_response_id, stored=True))
    return JSONResponse(payload, status_code=status or 200)


async def _sse(events: AsyncIterator[Any], lease: Lease) -> AsyncIterator[str]:
    """vLLM's events in vLLM's SSE framing (`event: <type>`, `data: <json>`); a stream that
    breaks off ends with the Responses API's `error` event instead of a cut connection, one
    that names the failure when the engine died (code engine_failed)."""
    from vllm.entrypoints.openai.responses.api_router import _convert_stream_to_sse_events

    numbered = _Numbered(events)
    sse = _convert_stream_to_sse_events(numbered)
    try:
        async for chunk in sse:
            yield chunk
    except Exception as exc:  # vLLM's generator catches no engine error: a dead engine ends here
        error = broken_stream(lease, exc)
        event = {
            "type": "error",
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "sequence_number": numbered.last + 1,
        }
        yield f"event: error\ndata: {json.dumps(event)}\n\n"
    finally:  # closed at once, down to the engine's request (aborted if unfinished)
        await sse.aclose()
        await numbered.aclose()


class _Numbered:
    """vLLM's events, passed through, remembering the last sequence number seen (the error
    event that may end the stream takes the next one)."""

    def __init__(self, events: AsyncIterator[Any]) -> None:
        self._events = events
        self.last = -1

    def __aiter__(self) -> _Numbered:
        return self

    async def __anext__(self) -> Any:
        event = await self._events.__anext__()
        self.last = getattr(event, "sequence_number", self.last)
        return event

    async def aclose(self) -> None:
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()

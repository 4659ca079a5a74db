"""Loading feedback: a streaming chat request that waits for a cold model sees the wait.

With `[host] loading_feedback = true`, the wait arrives as reasoning deltas
("loading coder-fast… 12 s") before the answer, so Open WebUI shows a live "thinking"
line instead of a frozen spinner. The chunks are ordinary chat.completion.chunk
objects; clients that ignore reasoning ignore them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from llmhost.config import RouteConfig
from llmhost.errors import HostError, error_body
from llmhost.lifecycle.manager import ModelManager

INTERVAL_SECONDS = 3.0


def _chunk(chunk_id: str, model: str, text: str) -> str:
    body = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning": text}, "finish_reason": None}],
    }
    return f"data: {json.dumps(body)}\n\n"


def _error(exc: HostError) -> str:
    return f"data: {json.dumps(error_body(exc.message, exc.type, exc.code, exc.param))}\n\ndata: [DONE]\n\n"


async def stream_with_feedback(
    request: Request, manager: ModelManager, route: RouteConfig, parsed: Any
) -> AsyncIterator[str]:
    model = str(parsed.model or route.primary_id)
    chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
    started = time.monotonic()
    waiting = asyncio.ensure_future(manager.acquire(route.name))
    try:
        while True:
            seconds = time.monotonic() - started
            yield _chunk(chunk_id, model, f"loading {route.primary_id}… {seconds:.0f} s\n")
            done, _ = await asyncio.wait({waiting}, timeout=INTERVAL_SECONDS)
            if done:
                break
    finally:
        if not waiting.done():  # the client went away while waiting: give up the ticket
            waiting.cancel()
    try:
        lease = waiting.result()
    except HostError as exc:
        yield _error(exc)
        return
    yield _chunk(chunk_id, model, f"{route.primary_id} ready after {time.monotonic() - started:.0f} s\n")
    try:
        result = await lease.backend.chat.create_chat_completion(parsed, request)  # type: ignore[attr-defined]
        if isinstance(result, AsyncIterator):
            async for chunk in result:
                yield chunk
        else:  # vLLM's ErrorResponse: already the OpenAI envelope
            yield f"data: {json.dumps(result.model_dump())}\n\ndata: [DONE]\n\n"
    finally:
        manager.release(lease)

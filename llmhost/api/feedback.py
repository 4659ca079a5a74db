"""Loading feedback: a streaming chat request that waits for a cold model sees the wait.

With `[host] loading_feedback = true`, the wait arrives as reasoning deltas
("loading coder-fast… 12 s") before the answer, so Open WebUI shows a live "thinking"
line instead of a frozen spinner. The chunks are ordinary chat.completion.chunk
objects; clients that ignore reasoning ignore them.

The whole response is one stream, as OpenAI's are: one `id` in every chunk and
`role: assistant` in the first chunk only. The progress chunks take the id vLLM will
give its answer (`chatcmpl-` + X-Request-Id or the request's `request_id`); each answer
chunk is checked with a string comparison and rewritten only when its id differs or it
repeats the role, so the common chunk costs no JSON parsing.
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


def _chunk(chunk_id: str, model: str, text: str, *, first: bool = False) -> str:
    delta = {"role": "assistant", "reasoning": text} if first else {"reasoning": text}
    body = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return f"data: {json.dumps(body)}\n\n"


def _stream_id(request: Request, parsed: Any) -> str:
    """The id vLLM gives this request's chunks (its `_base_request_id`), or a fresh one."""
    header = request.headers.get("X-Request-Id")
    base = header if header is not None else getattr(parsed, "request_id", None)
    return f"chatcmpl-{base or uuid.uuid4().hex}"


def _continue(chunk: str, prefix: str, chunk_id: str) -> str:
    """One of vLLM's SSE events as the continuation of our stream: our id, no role."""
    if chunk.startswith(prefix) and '"role"' not in chunk:
        return chunk  # the common case: already ours, nothing to parse
    if not chunk.startswith("data: {") or not chunk.endswith("\n\n"):
        return chunk  # [DONE], or not one event: pass through untouched
    try:
        body = json.loads(chunk[6:])
    except ValueError:
        return chunk
    if not isinstance(body, dict) or "choices" not in body:
        return chunk  # an error event
    body["id"] = chunk_id
    for choice in body["choices"] or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            delta.pop("role", None)
    return f"data: {json.dumps(body, separators=(',', ':'), ensure_ascii=False)}\n\n"


def _error(exc: HostError) -> str:
    return f"data: {json.dumps(error_body(exc.message, exc.type, exc.code, exc.param))}\n\ndata: [DONE]\n\n"


async def stream_with_feedback(
    request: Request, manager: ModelManager, route: RouteConfig, parsed: Any
) -> AsyncIterator[str]:
    model = str(parsed.model or route.primary_id)
    chunk_id = _stream_id(request, parsed)
    started = time.monotonic()
    waiting = asyncio.ensure_future(manager.acquire(route.name))
    first = True
    try:
        while True:
            seconds = time.monotonic() - started
            yield _chunk(chunk_id, model, f"loading {route.primary_id}… {seconds:.0f} s\n", first=first)
            first = False
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
            prefix = f'data: {{"id":{json.dumps(chunk_id)},'
            async for chunk in result:
                yield _continue(chunk, prefix, chunk_id)
        else:  # vLLM's ErrorResponse: already the OpenAI envelope
            yield f"data: {json.dumps(result.model_dump())}\n\ndata: [DONE]\n\n"
    finally:
        manager.release(lease)

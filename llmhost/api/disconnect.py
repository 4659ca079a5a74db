"""Work that stops when its client goes away, or when its handler is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

T = TypeVar("T")


async def until_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """Run `work` but give up (cancelling it) if the client disconnects first.

    A cancelled caller cancels `work` too: the server cancels a handler when it shuts
    down, and an engine call left running would go on without a lease or a reader.
    Call only after the body was read: this consumes the rest of the ASGI receive stream.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        watcher.cancel()
        await _cancel(task)
        raise
    watcher.cancel()
    if task in done:
        return task.result()
    await _cancel(task)  # the client is gone; nothing is waiting for an answer
    return None


async def _cancel(task: asyncio.Future[T]) -> None:
    """Cancel `task` and wait until it has ended (its cleanup done: the engine's request
    aborted, the lease released); its outcome is of no interest any more."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not report it as never retrieved


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return

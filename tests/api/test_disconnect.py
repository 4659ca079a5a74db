"""until_disconnected: the work ends with its client, and with its handler."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request
from starlette.types import Message

from llmhost.api.disconnect import until_disconnected

SCOPE = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}


class Call:
    """Stands in for an engine call: runs until cancelled and records how it ended."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self) -> str:
        self.started.set()
        try:
            await asyncio.Event().wait()  # an answer that never comes on its own
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return "answer"


def request(disconnect: asyncio.Event) -> Request:
    async def receive() -> Message:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    return Request(SCOPE, receive)


async def test_the_answer_when_the_client_stays() -> None:
    async def call() -> str:
        return "answer"

    assert await until_disconnected(request(asyncio.Event()), call()) == "answer"


async def test_a_client_that_leaves_cancels_the_call() -> None:
    call, gone = Call(), asyncio.Event()
    waiting = asyncio.ensure_future(until_disconnected(request(gone), call()))
    await call.started.wait()
    gone.set()
    assert await waiting is None
    assert call.cancelled.is_set()


async def test_a_cancelled_handler_cancels_its_call() -> None:
    # The server cancels a handler when it shuts down or the connection breaks: the engine
    # call must not run on without anyone waiting for it (and without a lease).
    call = Call()
    handler = asyncio.ensure_future(until_disconnected(request(asyncio.Event()), call()))
    await call.started.wait()
    handler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handler
    assert call.cancelled.is_set()  # set before the handler's cancellation finished

"""Leased streaming: a lease taken in the background, and a streaming response that holds
it until the stream ends.

The lease is always `ModelManager.lease()`, entered in a `LeaseHold`; the hold is closed
by the handler that took it or, when the handler answers with a stream, by the stream.
Nothing else releases a lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from types import TracebackType

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from llmhost.errors import SSE_ERROR_PREFIX
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.slot import Lease


class LeaseHold:
    """A lease on `route_name`, being taken from the moment this is created; `aclose`
    gives it up, or stops waiting for it. Usable as `async with`."""

    def __init__(self, manager: ModelManager, route_name: str) -> None:
        self._stack = AsyncExitStack()
        self.taking: asyncio.Future[Lease] = asyncio.ensure_future(
            self._stack.enter_async_context(manager.lease(route_name))
        )

    @property
    def lease(self) -> Lease | None:
        """The lease once granted; None while it is awaited, or when it was refused or given up."""
        taking = self.taking
        if not taking.done() or taking.cancelled() or taking.exception() is not None:
            return None
        return taking.result()

    async def aclose(self) -> None:
        if not self.taking.done():  # still waiting: stop, so no lease arrives after this
            self.taking.cancel()
            await asyncio.wait({self.taking})
        if not self.taking.cancelled():
            self.taking.exception()  # retrieved: a failure was already answered
        await self._stack.aclose()

    async def __aenter__(self) -> LeaseHold:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class LeasedStream(StreamingResponse):
    """Server-sent events that close `hold` when the stream ends, however it ends.

    With `on_error`, a stream whose content breaks off ends with the event `on_error`
    makes of the exception, instead of a connection cut mid-stream. With `on_error_event`,
    an error event in the content (vLLM's stream generators catch the engine's errors and
    send their own) is replaced by what `on_error_event` makes of it. Both checks live
    here, in the loop that sends the chunks, rather than in a generator wrapped around the
    content, which would add a layer to every chunk of every stream.
    """

    def __init__(
        self,
        content: AsyncIterator[str],
        hold: LeaseHold,
        on_error: Callable[[Exception], str] | None = None,
        on_error_event: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(content, media_type="text/event-stream")
        self._content = content
        self._hold = hold
        self._on_error = on_error
        self._on_error_event = on_error_event

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        on_error_event = self._on_error_event
        sending = False  # an exception while sending is the client's, not the content's
        try:
            async for chunk in self._content:
                if on_error_event is not None and chunk.startswith(SSE_ERROR_PREFIX):
                    chunk = on_error_event(chunk)
                sending = True
                await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})
                sending = False
        except Exception as exc:
            if sending or self._on_error is None:
                raise
            await send(
                {"type": "http.response.body", "body": self._on_error(exc).encode(), "more_body": True}
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                close = getattr(self._content, "aclose", None)
                if close is not None:  # first the work (the engine's request) ...
                    await close()
            finally:
                await self._hold.aclose()  # ... then the lease it held

"""Refuse request bodies over a size limit with 413, before they are buffered: in OpenAI's
error envelope, or Anthropic's shape on the Messages API paths."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmhost.api.anthropic.errors import error_response_at
from llmhost.errors import PayloadTooLarge


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        seen = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        def tracking_send(message: Message) -> Awaitable[None]:
            # Called for every chunk of a stream: a plain function handing back the
            # server's own awaitable, not a coroutine of its own around it.
            nonlocal response_started
            if not response_started and message["type"] == "http.response.start":
                response_started = True
            return send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = PayloadTooLarge(f"Request body larger than {self.max_bytes} bytes (host.max_body_bytes).")
        response = error_response_at(scope["path"], error)
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
        )
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass

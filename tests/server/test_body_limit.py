"""BodyLimit: a body over host.max_body_bytes is refused with errors.PayloadTooLarge's 413
envelope before it is buffered, whether it declares its length or arrives in chunks (in
Anthropic's shape on the Messages API paths); a body within the limit reaches the app whole."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from llmhost.errors import PayloadTooLarge, error_response
from llmhost.server.body_limit import BodyLimit
from tests import catalogs
from tests.apphelp import envelope, make_app, running
from tests.fakes import Recorder

LIMIT = 100


class Echo:
    """An ASGI app that reads the whole body, then answers with its length."""

    def __init__(self, respond_first: bool = False) -> None:
        self.respond_first = respond_first
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.respond_first:  # a streaming answer that started before the body was read
            await send({"type": "http.response.start", "status": 200, "headers": []})
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        if not self.respond_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


async def call(
    app: Any,
    chunks: list[bytes],
    content_length: int | None = None,
    scope_type: str = "http",
    path: str = "/",
) -> list[Message]:
    """`app` wrapped in BodyLimit(LIMIT), sent `chunks` as the request body at `path`; the
    messages it sent."""
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    scope = {"type": scope_type, "method": "POST", "path": path, "headers": headers}
    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await BodyLimit(app, LIMIT)(scope, receive, send)
    return sent


def refusal() -> list[Message]:
    """The two messages of PayloadTooLarge's response for LIMIT."""
    response = error_response(
        PayloadTooLarge(f"Request body larger than {LIMIT} bytes (host.max_body_bytes).")
    )
    return [
        {"type": "http.response.start", "status": 413, "headers": response.raw_headers},
        {"type": "http.response.body", "body": response.body},
    ]


async def test_a_declared_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    app = Echo()
    sent = await call(app, [b"x" * 10], content_length=LIMIT + 1)
    assert sent == refusal()
    assert app.bodies == []  # nothing was read


@pytest.mark.parametrize("chunks", [[b"x" * (LIMIT + 1)], [b"x" * 60, b"x" * 41], [b"x"] * (LIMIT + 1)])
async def test_chunks_without_a_length_are_refused_once_they_cross_the_limit(chunks: list[bytes]) -> None:
    app = Echo()
    sent = await call(app, chunks)
    assert sent == refusal()
    assert app.bodies == []


async def test_the_refusal_is_payload_too_large_in_the_openai_envelope() -> None:
    sent = await call(Echo(), [b"x" * (LIMIT + 1)])
    assert sent[0]["status"] == 413
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    error = envelope(json.loads(sent[1]["body"]))
    assert error == {
        "message": f"Request body larger than {LIMIT} bytes (host.max_body_bytes).",
        "type": "invalid_request_error",
        "param": None,
        "code": "payload_too_large",
    }


@pytest.mark.parametrize("content_length", [LIMIT + 1, None])
@pytest.mark.parametrize("path", ["/v1/messages", "/coder/v1/messages/count_tokens"])
async def test_on_the_messages_api_paths_the_refusal_is_in_anthropics_shape(
    path: str, content_length: int | None
) -> None:
    app = Echo()
    sent = await call(app, [b"x" * 60, b"x" * 41], content_length, path=path)
    assert app.bodies == [] and sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {
        "type": "error",
        "error": {
            "type": "request_too_large",
            "message": f"Request body larger than {LIMIT} bytes (host.max_body_bytes).",
        },
    }


@pytest.mark.parametrize(
    ("chunks", "content_length"),
    [([b"x" * LIMIT], LIMIT), ([b"x" * LIMIT], None), ([b"x" * 50, b"x" * 50], None), ([b""], None)],
)
async def test_a_body_within_the_limit_reaches_the_app_whole(
    chunks: list[bytes], content_length: int | None
) -> None:
    app = Echo()
    sent = await call(app, chunks, content_length)
    assert app.bodies == [b"".join(chunks)]
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == str(len(b"".join(chunks))).encode()


async def test_no_second_response_once_the_app_has_answered() -> None:
    app = Echo(respond_first=True)
    sent = await call(app, [b"x" * 60, b"x" * 60])
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert sent[0]["status"] == 200  # the refusal cannot replace a response already started


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    assert await call(app, [b"x" * (LIMIT + 1)], content_length=LIMIT + 1, scope_type="lifespan") == []
    assert seen == ["lifespan"]


async def test_oversized_body_is_413() -> None:
    catalog = catalogs.catalog({"a": {"kind": "llm", "model": "x"}}, max_body_bytes=2048)
    async with running(make_app(catalog, factory=Recorder().factory)) as client:
        response = await client.post("/v1/chat/completions", content=b"x" * 5000)
        assert response.status_code == 413
        assert envelope(response.json())["code"] == "payload_too_large"

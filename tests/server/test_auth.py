"""KeyCheck: which requests may use keyed routes, and the 401 a refused one gets.

Every endpoint's guard is checked on the app in tests/suites/test_security.py; here the
check itself, on bare requests.
"""

from __future__ import annotations

import pytest
from fastapi import Request

from llmhost.errors import Unauthorized
from llmhost.server.auth import KeyCheck

KEY = "sk-test-0123456789"


def request(authorization: str | None = None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return Request({"type": "http", "method": "GET", "path": "/v1/models", "headers": headers})


@pytest.mark.parametrize("api_key", [None, ""])
def test_without_a_key_everything_passes(api_key: str | None) -> None:
    check = KeyCheck(api_key)
    assert check.allows(request()) and check.allows(request("Bearer anything"))
    check.require(request())  # no 401


@pytest.mark.parametrize(
    "authorization", [f"Bearer {KEY}", f"bearer {KEY}", f"BEARER {KEY}", f"Bearer  {KEY} "]
)
def test_the_key_as_a_bearer_token_passes(authorization: str) -> None:
    check = KeyCheck(KEY)
    assert not check.allows(request()), "a key is set: a request without it is refused"
    assert check.allows(request(authorization))
    check.require(request(authorization))


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        KEY,  # no scheme
        f"Basic {KEY}",
        f"Token {KEY}",
        f"Bearer {KEY}x",
        f"Bearer {KEY[:-1]}",
        f"Bearer {KEY.upper()}",
        "Bearer nope",
    ],
)
def test_anything_else_does_not(authorization: str | None) -> None:
    assert KeyCheck(KEY).allows(request(authorization)) is False


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Missing API key"),
        ("Bearer ", "Missing API key"),
        (f"Basic {KEY}", "Missing API key"),
        ("Bearer nope", "Incorrect API key."),
    ],
)
def test_a_refusal_is_a_401_that_says_why(authorization: str | None, message: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        KeyCheck(KEY).require(request(authorization))
    error = caught.value
    assert (error.status, error.type, error.code) == (401, "authentication_error", "invalid_api_key")
    assert error.message.startswith(message)
    assert KEY not in error.message


def test_open_routes_need_no_key() -> None:
    KeyCheck(KEY).require(request(), mode="none")  # no 401
    with pytest.raises(Unauthorized):
        KeyCheck(KEY).require(request(), mode="key")


def keyed(x_api_key: str, authorization: str | None = None) -> Request:
    headers = [(b"x-api-key", x_api_key.encode())]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    return Request({"type": "http", "method": "POST", "path": "/v1/messages", "headers": headers})


@pytest.mark.parametrize("x_api_key", [KEY, f" {KEY} "])
def test_the_key_as_x_api_key_passes(x_api_key: str) -> None:
    """Anthropic's clients (the SDKs, Claude Code with ANTHROPIC_API_KEY) send it there."""
    check = KeyCheck(KEY)
    assert check.allows(keyed(x_api_key))
    check.require(keyed(x_api_key))
    assert check.allows(keyed(KEY, authorization="Bearer nope"))  # either header may carry it


@pytest.mark.parametrize(
    ("x_api_key", "message"),
    [("", "Missing API key"), (f"{KEY}x", "Incorrect API key."), (KEY.upper(), "Incorrect API key.")],
)
def test_a_wrong_x_api_key_is_refused(x_api_key: str, message: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        KeyCheck(KEY).require(keyed(x_api_key))
    assert caught.value.message.startswith(message)

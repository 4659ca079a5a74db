"""Security: the key guards every keyed endpoint, is compared in constant time and never leaks;
requests cannot make the host load anything models.toml does not name; CORS is off unless
configured; `llmhost serve` refuses a non-loopback address without a key.

All on the real app with a stub backend (no engine): seconds.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from llmhost.cli import main
from llmhost.config import Catalog
from tests import catalogs
from tests.apphelp import make_app, running
from tests.suites.test_fuzz import ServingRecorder

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-llmhost-Secret-0123456789"
GOOD = {"Authorization": f"Bearer {KEY}"}

CATALOG = catalogs.catalog(catalogs.SECURITY)
KEYED_NAMES = ["coder-fast", "chat-general", "vision-diffusion"]

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
LLM_ENDPOINTS = {
    "/v1/models",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1/messages/count_tokens",
}
IMAGE_ENDPOINTS = {"/generate", "/healthz", "/v1/images/generations"}
POOLING_ENDPOINTS = {"embedding": {"/v1/embeddings"}, "rerank": {"/v1/rerank"}}


def _request(path: str, route: str | None) -> dict[str, Any]:
    """A valid request for an endpoint: with the key it is served, so 401 can only mean the key."""
    if path.endswith("/chat/completions"):
        return {"json": {"model": route or "coder-fast", **CHAT}}
    if path.endswith("/completions"):
        return {"json": {"model": route or "coder-fast", "prompt": "hi", "max_tokens": 4}}
    if path.endswith("/responses"):
        return {"json": {"model": route or "coder-fast", "input": "hi"}}
    if path.endswith(("/messages", "/count_tokens")):
        return {"json": {"model": route or "coder-fast", **CHAT}}
    if path.endswith("/images/generations"):
        return {"json": {"model": route or "vision-diffusion", "prompt": "a fox", "size": "64x64"}}
    if path.endswith("/generate"):
        return {"json": {"prompt": "a fox", "width": 64, "height": 64}}
    if path.endswith("/embeddings"):
        return {"json": {"model": route or "embedder", "input": "hi"}}
    if path.endswith("/rerank"):
        return {"json": {"model": route or "reranker", "query": "hi", "documents": ["hi", "there"]}}
    if path.startswith("/tools/"):
        return {"params": {"q": "llmhost"}, "json": {"query": "llmhost"}}
    return {}


# With the key these would act outside the app: re-read ./models.toml, call SearXNG.
NOT_CALLED_WITH_THE_KEY = ("/admin/", "/tools/")
# Answered with the key, but not a 200: stored responses are not served (501).
NOT_SERVED = {"/v1/responses/{response_id}", "/openai/v1/responses/{response_id}"}


def _auth_error(path: str, body: Any) -> tuple[str, str | None]:
    """(type, code) of a 401: OpenAI's envelope, or Anthropic's shape on its paths (no code)."""
    if path.endswith(("/messages", "/count_tokens")):
        assert body["type"] == "error"
        return body["error"]["type"], "invalid_api_key"
    return body["error"]["type"], body["error"]["code"]


def endpoints(catalog: Catalog) -> list[tuple[str, str, str | None]]:
    """Every (method, path, route) the app serves, `{route}` filled with each route that has it."""
    app = make_app(catalog)
    found: list[tuple[str, str, str | None]] = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for method in sorted(route.methods - {"HEAD"}):
            if "{route}" not in route.path:
                found.append((method, route.path, None))
                continue
            suffix = route.path.removeprefix("/{route}")
            for name, config in catalog.routes.items():
                if config.kind in POOLING_ENDPOINTS:
                    kind_has_it = suffix in POOLING_ENDPOINTS[config.kind]
                else:
                    kind_has_it = suffix in (LLM_ENDPOINTS if config.kind == "llm" else IMAGE_ENDPOINTS)
                if kind_has_it or suffix == "/v1/models":
                    found.append((method, route.path.replace("{route}", name), name))
    return found


ENDPOINTS = endpoints(CATALOG)
OPEN = {"/healthz"}  # answers without a key, whatever the configuration


def _open_without_key(path: str, route: str | None) -> bool:
    return path in OPEN or (route is not None and CATALOG.routes[route].auth_mode == "none")


# ---- the key ------------------------------------------------------------------------------

WRONG_KEYS = {
    "missing": {},
    "wrong": {"Authorization": "Bearer nope"},
    "longer": {"Authorization": f"Bearer {KEY}x"},
    "prefix": {"Authorization": f"Bearer {KEY[:-1]}"},
    "other-scheme": {"Authorization": f"Basic {KEY}"},
    "no-scheme": {"Authorization": KEY},
    "empty-bearer": {"Authorization": "Bearer "},
    "wrong-x-api-key": {"X-Api-Key": "nope"},
    "other-header": {"Api-Key": KEY},
}


def test_the_endpoint_list_is_complete() -> None:
    """New endpoints join the checks below by themselves; this pins what is there today."""
    paths = {path for _, path, _ in ENDPOINTS}
    for expected in (
        "/healthz",
        "/routes",
        "/stats",
        "/metrics",
        "/v1/models",
        "/openai/v1/models",
        "/v1/chat/completions",
        "/openai/v1/completions",
        "/v1/images/generations",
        "/coder/v1/chat/completions",
        "/coder/v1/completions",
        "/coder/v1/models",
        "/vision/generate",
        "/vision/healthz",
        "/vision/v1/images/generations",
        "/public/v1/chat/completions",
        "/v1/embeddings",
        "/openai/v1/rerank",
        "/embed/v1/embeddings",
        "/rerank/v1/rerank",
    ):
        assert expected in paths, expected


async def test_every_keyed_endpoint_refuses_a_missing_or_wrong_key() -> None:
    recorder = ServingRecorder(load_seconds=0, stop_seconds=0)
    app = make_app(CATALOG, api_key=KEY, factory=recorder.factory)
    async with running(app) as client:
        for method, path, route in ENDPOINTS:
            request = _request(path, route)
            for label, headers in WRONG_KEYS.items():
                served_before = len(recorder.served)
                response = await client.request(method, path, headers=headers, **request)
                where = f"{method} {path} ({label} key)"
                if _open_without_key(path, route):
                    assert response.status_code != 401, where
                    continue
                assert response.status_code == 401, (where, response.status_code, response.text)
                error = _auth_error(path, response.json())
                assert error == ("authentication_error", "invalid_api_key"), where
                assert KEY not in response.text and "nope" not in response.text, where
                assert len(recorder.served) == served_before, f"{where} reached the backend"
            if path.startswith(NOT_CALLED_WITH_THE_KEY):
                continue
            served = await client.request(method, path, headers=GOOD, **request)
            expected = 501 if path.removesuffix("/cancel") in NOT_SERVED else 200
            assert served.status_code == expected, (method, path, served.text)
            as_x_api_key = await client.request(method, path, headers={"x-api-key": KEY}, **request)
            assert as_x_api_key.status_code == expected, (method, path, "Anthropic's key header")
            lowercase = await client.request(
                method, path, headers={"authorization": f"bearer {KEY}"}, **request
            )
            assert lowercase.status_code == expected, (method, path, "the scheme is case-insensitive")
    assert recorder.served, "with the key, requests were served"


async def test_the_key_in_the_query_string_is_not_a_key() -> None:
    async with running(make_app(CATALOG, api_key=KEY, factory=ServingRecorder().factory)) as client:
        assert (await client.get(f"/stats?api_key={KEY}")).status_code == 401
        assert (await client.get(f"/v1/models?key={KEY}")).status_code == 401


async def test_without_a_configured_key_everything_is_open() -> None:
    async with running(make_app(CATALOG, factory=ServingRecorder(load_seconds=0).factory)) as client:
        for method, path, route in ENDPOINTS:
            if path.startswith(NOT_CALLED_WITH_THE_KEY):
                continue
            response = await client.request(method, path, **_request(path, route))
            expected = 501 if path.removesuffix("/cancel") in NOT_SERVED else 200
            assert response.status_code == expected, (method, path, response.text)


async def test_the_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every comparison goes through hmac.compare_digest, and its answer alone decides."""
    calls: list[tuple[bytes, bytes]] = []
    verdict: dict[str, Callable[[bytes, bytes], bool]] = {"fn": hmac.compare_digest}

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return verdict["fn"](a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    async with running(make_app(CATALOG, api_key=KEY, factory=ServingRecorder().factory)) as client:
        for token, expected in ((KEY, 200), ("x" * len(KEY), 401), ("short", 401), (KEY + KEY, 401)):
            calls.clear()
            response = await client.get("/stats", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == expected, token
            assert calls == [(token.encode(), KEY.encode())], "compared with compare_digest, once"
        verdict["fn"] = lambda a, b: True  # were there any other comparison, this would not be enough
        assert (await client.get("/stats", headers={"Authorization": "Bearer nope"})).status_code == 200
        verdict["fn"] = lambda a, b: False
        assert (await client.get("/stats", headers=GOOD)).status_code == 401


async def test_the_key_never_appears_in_logs_errors_or_admin_output(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = ServingRecorder(load_seconds=0, stop_seconds=0)
    app = make_app(CATALOG, api_key=KEY, factory=recorder.factory)
    seen: list[str] = []
    async with running(app) as client:
        for headers in ({}, {"Authorization": f"Bearer {KEY[:-1]}"}, {"Authorization": f"Basic {KEY}"}, GOOD):
            for path in (
                "/routes",
                "/stats",
                "/metrics",
                "/v1/models",
                "/coder/v1/models",
                "/nope/v1/models",
            ):
                seen.append((await client.get(path, headers=headers)).text)
            for path, body in (
                ("/v1/chat/completions", {"model": "coder-fast", **CHAT}),
                ("/v1/chat/completions", {"model": "nope", **CHAT}),
                ("/v1/chat/completions", {"model": "coder-fast", "messages": "bad"}),
                ("/v1/completions", {"model": "chat-general", "prompt": "hi"}),
                ("/vision/generate", {"prompt": "a fox", "width": 7}),
                ("/v1/images/generations", {"model": "vision-diffusion", "prompt": "a fox"}),
            ):
                response = await client.post(path, json=body, headers=headers)
                seen.append(response.text + str(dict(response.headers)))
        seen.append(repr(app.state.host))
    assert recorder.served, "the run included served requests"
    assert caplog.records, "the run logged (loads at least)"
    for text in seen:
        assert KEY not in text
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in repr(record.args)


# ---- information before the key ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/chat/completions", {"model": "nope", **CHAT}),
        ("POST", "/v1/completions", {"model": "nope", "prompt": "hi"}),
        ("POST", "/v1/images/generations", {"model": "nope", "prompt": "a fox"}),
        ("GET", "/nope/v1/models", None),
    ],
    ids=["chat", "completions", "images", "route-models"],
)
async def test_no_keyed_name_is_revealed_without_the_key(method: str, path: str, body: Any) -> None:
    async with running(make_app(CATALOG, api_key=KEY, factory=ServingRecorder().factory)) as client:
        response = await client.request(method, path, json=body)
        assert 400 <= response.status_code < 500
        for name in [*KEYED_NAMES, "/coder", "/chat", "/vision"]:
            assert name not in response.text, (name, response.text)


async def test_the_api_schema_is_not_served_without_the_key() -> None:
    async with running(make_app(CATALOG, api_key=KEY, factory=ServingRecorder().factory)) as client:
        assert (await client.get("/openapi.json")).status_code in (401, 404)


# ---- nothing loads that models.toml does not name ----------------------------------------

NOT_IN_CONFIG = [
    "/etc/passwd",
    "../models",
    "../../root/.cache/huggingface/hub",
    "~/models/evil",
    "file:///etc/passwd",
    "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen2.5-0.5B-Instruct",  # the chat route's hub id: only its served names select it
    "org/coder",
    "org/model",
    "https://huggingface.co/org/model",
    "CODER-FAST",
    " coder-fast",
    "coder-fast\u0000",
    "coder-fast/../chat-general",
]


@pytest.mark.parametrize("model", NOT_IN_CONFIG)
async def test_model_ids_outside_the_config_load_nothing(model: str) -> None:
    recorder = ServingRecorder()
    async with running(make_app(CATALOG, api_key=KEY, factory=recorder.factory), **GOOD) as client:
        requests = [
            ("/v1/chat/completions", {"model": model, **CHAT}),
            ("/openai/v1/completions", {"model": model, "prompt": "hi"}),
            ("/coder/v1/chat/completions", {"model": model, **CHAT}),
            ("/v1/images/generations", {"model": model, "prompt": "a fox"}),
            ("/vision/v1/images/generations", {"model": model, "prompt": "a fox"}),
        ]
        for path, body in requests:
            response = await client.post(path, json=body)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "model_not_found"
    assert recorder.events == []


@pytest.mark.parametrize(
    "path",
    [
        "/Coder/v1/chat/completions",
        "/%2e%2e/v1/chat/completions",
        "/..%2Fcoder/v1/chat/completions",
        "/coder%2F..%2Fchat/v1/chat/completions",
        "/org%2Fcoder/v1/chat/completions",
        "/etc/passwd/v1/chat/completions",
    ],
)
async def test_route_paths_outside_the_config_load_nothing(path: str) -> None:
    recorder = ServingRecorder()
    async with running(make_app(CATALOG, api_key=KEY, factory=recorder.factory), **GOOD) as client:
        response = await client.post(path, json=CHAT)
        assert response.status_code == 404, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert recorder.events == []


# ---- CORS -----------------------------------------------------------------------------------

PREFLIGHT = {
    "Origin": "https://webui.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


def _cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


async def test_cors_is_off_without_configured_origins() -> None:
    async with running(make_app(CATALOG, factory=ServingRecorder().factory)) as client:
        preflight = await client.options("/v1/chat/completions", headers=PREFLIGHT)
        assert _cors_headers(preflight) == {}
        simple = await client.get("/v1/models", headers={"Origin": "https://webui.example"})
        assert simple.status_code == 200 and _cors_headers(simple) == {}


async def test_cors_allows_only_the_configured_origins() -> None:
    catalog = catalogs.catalog(catalogs.SECURITY, cors_origins=["https://webui.example"])
    async with running(make_app(catalog, api_key=KEY, factory=ServingRecorder().factory)) as client:
        allowed = await client.options("/v1/chat/completions", headers=PREFLIGHT)
        assert allowed.status_code == 200
        headers = _cors_headers(allowed)
        assert headers["access-control-allow-origin"] == "https://webui.example"
        assert "authorization" in headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in headers
        other = await client.options(
            "/v1/chat/completions", headers={**PREFLIGHT, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in _cors_headers(other)
        simple = await client.get("/v1/models", headers={"Origin": "https://evil.example", **GOOD})
        assert "access-control-allow-origin" not in _cors_headers(simple)
        # CORS lets a page read replies; it does not replace the key.
        keyless = await client.get("/v1/models", headers={"Origin": "https://webui.example"})
        assert keyless.status_code == 401


# ---- llmhost serve on a non-loopback address ------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """Records what the server would listen on instead of serving; no .env of a developer is read."""
    import signal

    from llmhost.cli.notify import NotifyingServer

    calls: list[dict[str, Any]] = []

    def record(server: NotifyingServer, *args: Any, **kwargs: Any) -> None:
        calls.append({"host": server.config.host, "port": server.config.port})
        server.started = True

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(NotifyingServer, "run", record)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # serve installs SIGTERM/SIGINT handlers
    return calls


def _serve(*args: str) -> int:
    return main(["serve", "--config", str(REPO / "models.toml"), *args])


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "llm.example.lan"])
def test_serve_refuses_a_non_loopback_address_without_a_key(
    host: str, served: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _serve("--host", host) == 2
    assert "VLLM_API_KEY" in capsys.readouterr().err
    assert served == []


def test_serve_refusal_also_applies_to_the_environment_and_a_blank_key(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMHOST_HOST", "0.0.0.0")
    assert _serve() == 2
    monkeypatch.setenv("VLLM_API_KEY", "   ")
    assert _serve() == 2
    assert served == []


def test_serve_listens_on_lan_only_with_a_key_or_the_explicit_opt_out(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _serve("--host", "0.0.0.0", "--allow-no-key") == 0
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    assert _serve("--host", "0.0.0.0") == 0
    assert [call["host"] for call in served] == ["0.0.0.0", "0.0.0.0"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_serve_on_loopback_needs_no_key(host: str, served: list[dict[str, Any]]) -> None:
    assert _serve("--host", host) == 0
    assert served[0]["host"] == host

"""Admin endpoints, auth and the error envelope, on the real app with a fake backend."""

from __future__ import annotations

import pytest

from llmhost.config import parse_catalog
from tests import catalogs
from tests.apphelp import make_app, running
from tests.fakes import Recorder

CATALOG = catalogs.catalog(catalogs.CODER_AND_VISION)
KEY = "s3cret-key-value"


def _envelope(body: dict) -> dict:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


async def test_healthz_routes_stats_shapes() -> None:
    async with running(make_app(CATALOG, factory=Recorder().factory)) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        routes = (await client.get("/routes")).json()["routes"]
        assert [r["route"] for r in routes] == ["coder", "vision"]
        assert routes[0] | {"paths": None} == {
            "route": "coder",
            "kind": "llm",
            "model": "org/coder",
            "served_names": ["coder-fast"],
            "auth": "key",
            "idle_seconds": 600.0,
            "state": "stopped",
            "paths": None,
        }
        stats = (await client.get("/stats")).json()
        assert stats["gpu"]["available"] is False and "no GPU" in stats["gpu"]["reason"]
        model = stats["models"][0]
        assert {
            "state",
            "last_hit",
            "loads",
            "cold_start_seconds",
            "in_flight",
            "waiting",
            "swaps",
            "last_error",
        } <= set(model)
        assert set(model["cold_start_seconds"]) == {"last", "median", "max"}


async def test_key_required_everywhere_but_healthz_and_open_routes() -> None:
    app = make_app(CATALOG, api_key=KEY, factory=Recorder().factory)
    async with running(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        for path in ("/routes", "/stats", "/metrics", "/v1/models", "/openai/v1/models", "/coder/v1/models"):
            missing = await client.get(path)
            wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
            assert missing.status_code == wrong.status_code == 401, path
            error = _envelope(wrong.json())
            assert error["type"] == "authentication_error"
            assert KEY not in wrong.text
            ok = await client.get(path, headers={"Authorization": f"Bearer {KEY}"})
            assert ok.status_code == 200, path
        for path in ("/coder/v1/chat/completions", "/v1/chat/completions"):
            refused = await client.post(path, json={"model": "coder-fast", "messages": []})
            assert refused.status_code == 401
        # auth = "none" routes answer without a key
        assert (await client.get("/vision/v1/models")).status_code == 200
        assert KEY not in (await client.get("/routes", headers={"Authorization": f"Bearer {KEY}"})).text


async def test_unknown_route_and_model_are_404_envelopes() -> None:
    rec = Recorder()
    async with running(make_app(CATALOG, factory=rec.factory)) as client:
        response = await client.get("/nope/v1/models")
        assert response.status_code == 404
        assert _envelope(response.json())["code"] == "model_not_found"
        response = await client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": []})
        assert response.status_code == 404
        assert _envelope(response.json())["code"] == "model_not_found"
        response = await client.post(
            "/coder/v1/chat/completions", json={"model": "vision-diffusion", "messages": []}
        )
        assert response.status_code == 404 and "/vision" in response.json()["error"]["message"]
        response = await client.get("/no/such/endpoint/at/all")
        assert response.status_code == 404
        _envelope(response.json())
    assert rec.events == []  # nothing was loaded


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b""])
async def test_malformed_bodies_are_400(body: bytes) -> None:
    async with running(make_app(CATALOG, factory=Recorder().factory)) as client:
        response = await client.post(
            "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert _envelope(response.json())["type"] == "invalid_request_error"


async def test_oversized_body_is_413() -> None:
    catalog = parse_catalog("[host]\nmax_body_bytes = 2048\n[routes.a]\nkind='llm'\nmodel='x'\n")
    async with running(make_app(catalog, factory=Recorder().factory)) as client:
        response = await client.post("/v1/chat/completions", content=b"x" * 5000)
        assert response.status_code == 413
        assert _envelope(response.json())["code"] == "payload_too_large"


async def test_model_lists_never_load() -> None:
    rec = Recorder()
    async with running(make_app(CATALOG, factory=rec.factory)) as client:
        data = (await client.get("/openai/v1/models")).json()["data"]
        assert {m["id"] for m in data} == {"coder-fast", "vision-diffusion"}
        assert all(m["loaded"] is False and m["owned_by"] == "llmhost" for m in data)
        assert (await client.get("/v1/models")).json() == (await client.get("/openai/v1/models")).json()
        route_list = (await client.get("/coder/v1/models")).json()["data"]
        assert [m["id"] for m in route_list] == ["coder-fast"]
    assert rec.events == []


async def test_metrics_has_llmhost_series() -> None:
    async with running(make_app(CATALOG, factory=Recorder().factory)) as client:
        text = (await client.get("/metrics")).text
        assert 'llmhost_model_state{model="coder-fast",route="coder",state="stopped"} 1.0' in text
        assert "llmhost_model_loads" in text

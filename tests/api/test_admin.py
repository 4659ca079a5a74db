"""Admin endpoints (/healthz, /routes, /stats, /metrics, the model lists) and the key that
guards them, on the real app with a fake backend."""

from __future__ import annotations

from tests import catalogs
from tests.apphelp import envelope, make_app, running
from tests.fakes import Recorder

CATALOG = catalogs.catalog(catalogs.CODER_AND_VISION)
KEY = "s3cret-key-value"


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
            error = envelope(wrong.json())
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

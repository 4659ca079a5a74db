"""Admin endpoints (/healthz, /routes, /stats, /metrics, the model lists) and the key that
guards them, on the real app with a fake backend."""

from __future__ import annotations

from llmhost.units import GIB
from tests import catalogs
from tests.apphelp import envelope, make_app, running
from tests.fakes import FakeGpu, Recorder

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


async def test_unload_frees_the_named_routes_and_says_how_much_came_back() -> None:
    gpu = FakeGpu(total_bytes=16 * GIB)
    rec = Recorder(gpu=gpu)
    app = make_app(CATALOG, api_key=KEY, factory=rec.factory, gpu=gpu)
    async with running(app, Authorization=f"Bearer {KEY}") as client:
        async with app.state.host.manager.lease("coder"):  # a request: coder is loaded
            pass
        answer = await client.post("/admin/unload", json={"routes": ["coder"]})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "status": "unloaded",
            "unloaded": ["coder"],
            "freed_bytes": 4 * GIB,
            "freed_reason": None,
        }
        assert app.state.host.manager.route_state("coder").value == "stopped" and rec.live == set()
        # No body, or no routes: every route; nothing loaded now, so nothing came back.
        assert (await client.post("/admin/unload")).json()["unloaded"] == []


async def test_unload_refuses_unknown_routes_bad_bodies_and_missing_keys() -> None:
    rec = Recorder()
    async with running(make_app(CATALOG, api_key=KEY, factory=rec.factory)) as client:
        keyed = {"Authorization": f"Bearer {KEY}"}
        assert (await client.post("/admin/unload", json={"routes": ["coder"]})).status_code == 401
        unknown = await client.post("/admin/unload", json={"routes": ["coder", "chat"]}, headers=keyed)
        assert unknown.status_code == 404
        error = envelope(unknown.json())
        assert error["message"] == "No route named 'chat'. Routes: coder, vision."
        assert error["param"] == "routes"
        bad = await client.post("/admin/unload", json={"routes": "coder"}, headers=keyed)
        assert bad.status_code == 400 and envelope(bad.json())["param"] == "routes"
        extra = await client.post("/admin/unload", json={"route": ["coder"]}, headers=keyed)
        assert extra.status_code == 400
        # Without NVML the memory freed is unknown, and the answer says why.
        answer = (await client.post("/admin/unload", json={}, headers=keyed)).json()
        assert answer["freed_bytes"] is None and "no GPU in tests" in answer["freed_reason"]
    assert rec.events == []


async def test_routes_says_a_resident_route_never_idles_out() -> None:
    from tests.lifecycle.test_resident import resident_catalog

    async with running(make_app(resident_catalog(idle_seconds=30), factory=Recorder().factory)) as client:
        routes = {r["route"]: r for r in (await client.get("/routes")).json()["routes"]}
        assert routes["e"]["idle_seconds"] is None  # resident, no idle_seconds of its own
        assert routes["a"]["idle_seconds"] == 30.0

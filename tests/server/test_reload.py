"""Reloading models.toml in a running host: manager semantics, HTTP, SIGHUP."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from llmhost.config import parse_catalog
from llmhost.errors import ModelNotFound
from llmhost.gpu.monitor import NullMonitor
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.state import ModelState
from tests.apphelp import make_app, running, until
from tests.fakes import Recorder, no_sleep_mode
from tests.hostproc import HostProcess


def table(**routes: str) -> str:
    return "\n".join(
        f'[routes.{name}]\nkind = "llm"\nmodel = "{model}"\nserved_names = ["{name}-model"]'
        for name, model in routes.items()
    )


async def test_reload_adds_removes_and_changes_without_dropping_requests() -> None:
    rec = Recorder()
    manager = ModelManager(
        parse_catalog(table(a="org/a-v1", b="org/b")),
        rec.factory,
        NullMonitor("test"),
        standby_query=no_sleep_mode,
    )
    manager.start()
    manager.prewarm(["b"])  # b is resident, then removed
    lease_a = await manager.acquire("a")  # in flight across the reload
    changes = manager.reconfigure(parse_catalog(table(a="org/a-v2", c="org/c")))
    assert changes == {"added": ["c"], "removed": ["b"], "changed": ["a"]}

    with pytest.raises(ModelNotFound):
        await manager.acquire("b")
    await asyncio.wait_for(until(manager, lambda: "b" not in manager.slots), 30)
    assert "b" not in rec.live  # removed: unloaded, gone
    # a keeps serving its in-flight request on the old engine (within drain_timeout_seconds)
    assert manager.route_state("a") is ModelState.READY and not lease_a.revoked
    manager.release(lease_a)
    async with manager.lease("a"):  # next use: the new settings
        pass
    assert rec.models_loaded[-1] == "org/a-v2"
    async with manager.lease("c"):
        pass
    await manager.close()


CONFIG_V1 = table(coder="org/coder")
CONFIG_V2 = table(coder="org/coder", chat="org/chat")


async def test_admin_reload_applies_and_refuses_bad_edits(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(CONFIG_V1)
    catalog = parse_catalog(CONFIG_V1, str(path))
    async with running(make_app(catalog, factory=Recorder().factory)) as client:
        path.write_text(CONFIG_V2)
        response = await client.post("/admin/reload")
        assert response.status_code == 200 and response.json()["added"] == ["chat"]
        assert [r["route"] for r in (await client.get("/routes")).json()["routes"]] == ["coder", "chat"]
        assert (await client.get("/chat/v1/models")).status_code == 200

        path.write_text(CONFIG_V2 + "\nbogus = 1\n")
        refused = await client.post("/admin/reload")
        assert refused.status_code == 400
        assert "current configuration stays" in refused.json()["error"]["message"]
        assert "bogus" in refused.json()["error"]["message"]
        assert [r["route"] for r in (await client.get("/routes")).json()["routes"]] == ["coder", "chat"]


def test_sighup_reloads_a_running_host(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(CONFIG_V1)
    with HostProcess(path) as host:
        host.ready(30)
        path.write_text(CONFIG_V2)
        mark = host.mark()
        host.proc.send_signal(signal.SIGHUP)
        host.wait_for("configuration reloaded: added chat", 30, after=mark)
        assert len(httpx.get(f"{host.url}/routes").json()["routes"]) == 2
        path.write_text("not [valid toml")
        mark = host.mark()
        host.proc.send_signal(signal.SIGHUP)
        host.wait_for("reload refused, keeping the current configuration", 30, after=mark)
        assert httpx.get(f"{host.url}/healthz").status_code == 200
        assert len(httpx.get(f"{host.url}/routes").json()["routes"]) == 2  # old table kept
        host.proc.send_signal(signal.SIGTERM)
        assert host.proc.wait(timeout=30) == 0

"""Unload on demand (`llmhost unload`, POST /admin/unload): in-flight requests drain within
drain_timeout_seconds, requests waiting for the model get 503, later requests load it
again as usual, and the answer says what was unloaded. The real engine's side is in
test_engines.py."""

from __future__ import annotations

import asyncio

import pytest

from llmhost.errors import ModelUnavailable, RouteNotFound
from llmhost.lifecycle.state import ModelState
from tests.apphelp import ServerThread, make_app
from tests.fakes import FakeGpu, Recorder, catalog
from tests.lifecycle.support import BOUND, GatedRecorder, start_manager, use, wait_until, within

STANDBY = {"standby": "sleep", "sleep_level": 1}


async def test_unload_drains_in_flight_requests_then_stops_the_engine() -> None:
    rec = Recorder()
    manager, clock = start_manager(rec, drain_timeout_seconds=60)
    in_flight = await within(manager.acquire("a"))
    unloading = asyncio.create_task(manager.unload(["a"]))
    await wait_until(manager, lambda: manager.slots["a"].eviction is not None)
    assert not unloading.done() and in_flight.revoked is None  # draining
    clock.advance(60)
    assert await within(unloading) == ["a"]
    assert in_flight.revoked is not None and manager.route_state("a") is ModelState.STOPPED
    assert rec.events == ["load a", "stop a"] and rec.live == set()
    manager.release(in_flight)
    await within(use(manager, "a"))  # a later request loads it again, as usual
    assert rec.loads == {"a": 2}
    await manager.close()


async def test_unload_of_every_model_includes_asleep_ones_and_none_sleeps() -> None:
    rec = Recorder(gpu=FakeGpu())
    manager, _ = start_manager(rec, routes=("a", "b", "c"), every_route=STANDBY, standby_query=lambda: None)
    await wait_until(manager, lambda: manager.scheduler.ctx.standby.known)
    await within(use(manager, "a"))
    await within(use(manager, "b"))  # a sleeps to make room
    assert manager.route_state("a") is ModelState.ASLEEP
    assert await within(manager.unload()) == ["a", "b"]  # c was never loaded
    assert rec.live == set() and rec.asleep == {}
    assert "sleep b" not in rec.events
    assert {s["route"]: s["state"] for s in manager.snapshot()} == {
        "a": "stopped",
        "b": "stopped",
        "c": "stopped",
    }
    await manager.close()


async def test_unload_abandons_a_load_and_answers_its_waiting_requests() -> None:
    rec = GatedRecorder()
    rec.gate("load a")
    manager, _ = start_manager(rec)
    request = asyncio.create_task(use(manager, "a"))
    await within(rec.reached("load a").wait())
    assert await within(manager.unload(["a"])) == ["a"]
    with pytest.raises(ModelUnavailable, match="unloaded on request"):
        await within(request)
    assert manager.route_state("a") is ModelState.STOPPED and rec.live == set()
    stats = {s["route"]: s for s in manager.snapshot()}["a"]
    assert stats["refused"]["unloaded"] == 1 and stats["failed_loads"] == 0
    del rec.gates["load a"]
    await within(use(manager, "a"))
    await manager.close()


async def test_unload_of_a_stopped_model_answers_at_once_and_unknown_routes_are_named() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec)
    assert await within(manager.unload(["b"])) == []
    with pytest.raises(RouteNotFound, match=r"No route named 'nope'\. Routes: a, b\."):
        await within(manager.unload(["a", "nope"]))
    assert rec.events == []
    await manager.close()


def test_the_unload_command(capsys: pytest.CaptureFixture[str]) -> None:
    from llmhost.cli import main

    rec = Recorder()
    app = make_app(catalog("exclusive", ("a", "b")), factory=rec.factory)
    with ServerThread(app) as server:
        manager = app.state.host.manager
        server.run_soon(use(manager, "a")).result(BOUND)  # a is loaded
        assert main(["unload", "a", "--url", server.url]) == 0
        assert capsys.readouterr().out == "unloaded a; GPU memory freed: unknown (no GPU in tests)\n"
        assert manager.route_state("a") is ModelState.STOPPED and rec.live == set()
        assert main(["unload", "--url", server.url]) == 0  # every route: none is loaded now
        assert capsys.readouterr().out.startswith("nothing was loaded;")
        assert main(["unload", "nope", "--url", server.url]) == 1
        assert capsys.readouterr().err == "llmhost unload: No route named 'nope'. Routes: a, b.\n"
    assert main(["unload", "--url", server.url]) == 1  # nobody answers there now
    assert "journalctl -u llmhost -e" in capsys.readouterr().err

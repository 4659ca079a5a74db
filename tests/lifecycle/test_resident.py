"""Resident routes (`resident = true`): loaded at start-up, never evicted to make room,
counted as used when the others size themselves. The manager over fake backends, then a
real tiny resident engine that keeps its process across swaps of two other routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llmhost.cli.status import render
from llmhost.config import Catalog, parse_catalog
from llmhost.config.text import models_toml
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.state import ModelState
from llmhost.units import GIB
from tests.apphelp import ServerThread, make_app, tiny_llm_route
from tests.fakes import FakeGpu, Recorder, no_sleep_mode
from tests.lifecycle.clock import ManualClock
from tests.lifecycle.support import settled, start_manager, use, wait_state, wait_until

MARGIN = int(0.75 * GIB)


def resident_catalog(policy: str = "exclusive", embed: dict[str, Any] | None = None, **host: Any) -> Catalog:
    """Route e (resident) beside a and b, which swap."""
    tables = {
        "e": {
            "kind": "llm",
            "model": "org/e",
            "served_names": ["e-model"],
            "resident": True,
            **(embed or {}),
        },
        "a": {"kind": "llm", "model": "org/a", "served_names": ["a-model"]},
        "b": {"kind": "llm", "model": "org/b", "served_names": ["b-model"]},
    }
    return parse_catalog(models_toml({"policy": policy, "engine_margin_gib": 0.75, **host}, tables))


async def test_a_resident_route_loads_at_start_and_stays_through_swaps() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec, cat=resident_catalog())
    await wait_state(manager, "e", ModelState.READY)  # no request asked for it
    assert rec.events == ["load e"]
    for route in ("a", "b", "a"):
        await use(manager, route)
    await settled(manager)
    assert manager.route_state("e") is ModelState.READY
    assert rec.events == ["load e", "load a", "stop a", "load b", "stop b", "load a"]  # exclusive among a, b
    assert {s["route"]: s["resident"] for s in manager.snapshot()} == {"e": True, "a": False, "b": False}
    await manager.close()
    assert "stop e" in rec.events  # a shutdown unloads it like the others


async def test_a_resident_route_is_never_idle_unless_it_sets_idle_seconds() -> None:
    rec = Recorder()
    manager, clock = start_manager(rec, cat=resident_catalog(idle_seconds=30))
    await wait_state(manager, "e", ModelState.READY)
    await use(manager, "a")
    clock.advance(3600)
    await wait_state(manager, "a", ModelState.STOPPED)
    await settled(manager)
    assert manager.route_state("e") is ModelState.READY
    await manager.close()

    rec = Recorder()
    manager, clock = start_manager(rec, cat=resident_catalog(idle_seconds=30, embed={"idle_seconds": 100}))
    await wait_state(manager, "e", ModelState.READY)
    clock.advance(60)
    await settled(manager)
    assert manager.route_state("e") is ModelState.READY  # its own idle time, not the host's
    clock.advance(60)
    await wait_state(manager, "e", ModelState.STOPPED)
    await manager.close()


async def test_auto_sizing_counts_a_resident_route_as_used_even_while_unloaded() -> None:
    """e takes its estimate, a the rest; once e idled out, b still leaves e's share free,
    so e comes back beside b without evicting it."""
    gpu = FakeGpu(total_bytes=16 * GIB)
    rec = Recorder(gpu=gpu, beyond_budget=MARGIN)  # engines fill their budget
    clock = ManualClock()
    manager = ModelManager(
        resident_catalog(embed={"idle_seconds": 50}),
        rec.factory,
        gpu,
        clock=clock,
        estimator=lambda route: 2 * GIB if route.name == "e" else None,
        standby_query=no_sleep_mode,
    )
    manager.start()
    await wait_state(manager, "e", ModelState.READY)
    await use(manager, "a")
    stats = {s["route"]: s for s in manager.snapshot()}
    assert stats["e"]["memory_budget_bytes"] == 2 * GIB - MARGIN  # its estimate less the margin
    held = stats["e"]["memory_bytes"]
    assert held is not None and stats["a"]["memory_budget_bytes"] == 16 * GIB - held - MARGIN
    clock.advance(60)
    await wait_state(manager, "e", ModelState.STOPPED)
    await use(manager, "b")  # a goes (exclusive); e is not loaded, but b leaves it room
    stats = {s["route"]: s for s in manager.snapshot()}
    assert stats["b"]["memory_budget_bytes"] == 16 * GIB - MARGIN - 2 * GIB
    await use(manager, "e")
    await settled(manager)
    assert manager.route_state("b") is ModelState.READY and rec.live == {"b", "e"}
    assert rec.events[-2:] == ["load b", "load e"]
    await manager.close()


async def test_a_resident_route_that_does_not_fit_evicts_the_others_not_residents() -> None:
    """A resident route coming back to a GPU filled by a fixed-size route: the policy
    makes room among the others, and a second resident route stays."""
    gpu = FakeGpu(total_bytes=16 * GIB)
    rec = Recorder(gpu=gpu)
    rec.memory = {"e": 2 * GIB, "f": 2 * GIB, "a": 11 * GIB}
    tables = {
        "e": {"kind": "llm", "model": "org/e", "resident": True, "memory_gib": 2, "idle_seconds": 50},
        "f": {"kind": "llm", "model": "org/f", "resident": True, "memory_gib": 2},
        "a": {"kind": "llm", "model": "org/a", "memory_gib": 11},
    }
    cat = parse_catalog(models_toml({"policy": "exclusive", "engine_margin_gib": 0.75}, tables))
    manager, clock = start_manager(rec, cat=cat)
    await wait_until(manager, lambda: rec.live == {"e", "f"})
    clock.advance(60)
    await wait_state(manager, "e", ModelState.STOPPED)
    gpu.used["desktop"] = 2 * GIB  # the room a left for e is taken by someone else
    await use(manager, "a")
    await use(manager, "e")
    await settled(manager)
    assert rec.live == {"e", "f"} and "stop a" in rec.events and "stop f" not in rec.events
    await manager.close()


async def test_a_reload_that_changes_a_resident_route_loads_it_again_at_once() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec, cat=resident_catalog())
    await wait_state(manager, "e", ModelState.READY)
    manager.reconfigure(resident_catalog(embed={"model": "org/e2"}))
    await wait_until(manager, lambda: rec.models_loaded == ["org/e", "org/e2"])
    await wait_state(manager, "e", ModelState.READY)
    assert rec.events == ["load e", "stop e", "load e"]
    await manager.close()


def test_status_shows_a_resident_column_only_when_a_route_is_resident() -> None:
    def model(route: str, resident: bool) -> dict[str, Any]:
        return {
            "route": route,
            "model": f"{route}-model",
            "resident": resident,
            "state": "ready",
            "loading_seconds": None,
            "memory_bytes": None,
            "last_hit": None,
            "loads": 1,
            "cold_start_seconds": {"last": None},
            "in_flight": 0,
            "waiting": 0,
        }

    def table(*models: dict[str, Any]) -> list[str]:
        stats = {"models": list(models), "gpu": {"available": False, "reason": "test"}}
        return render(stats | {"policy": "exclusive", "uptime_seconds": 5}).splitlines()[: len(models) + 1]

    header, embed, chat = table(model("embed", True), model("chat", False))
    assert header.split()[:4] == ["ROUTE", "MODEL", "STATE", "RESIDENT"]
    column = header.index("RESIDENT")
    assert embed[column:].startswith("yes ") and chat[column:].startswith(" ")
    assert "RESIDENT" not in table(model("chat", False))[0]


# ---- a real tiny engine ---------------------------------------------------------------------


@pytest.mark.engine
def test_a_resident_engine_keeps_its_process_across_swaps(tiny_models: Any) -> None:
    """A tiny embedder (resident) beside two tiny chat routes under `exclusive`: it loads at
    start-up, and its engine processes (the same pids) serve it after coder -> chat ->
    coder swapped the other two, while each swap ends the other's engine."""
    from llmhost.tiny_models import ensure_tiny_pooling_models
    from llmhost.tiny_models.pooling import EMBEDDER_HIDDEN_SIZE
    from tests.api.pooling.conftest import pooling_route
    from tests.hostproc import wait_until as poll
    from tests.lifecycle.test_engines import chat, engine_processes

    embedder = ensure_tiny_pooling_models().embedder
    text = (
        '[host]\npolicy = "exclusive"\n'
        + pooling_route("embed", "embedding", embedder, "embed-tiny").replace(
            'served_names = ["embed-tiny"]', 'served_names = ["embed-tiny"]\nresident = true'
        )
        + tiny_llm_route("coder", tiny_models.llm, "coder-fast")
        + tiny_llm_route("chat", tiny_models.llm_alt, "chat-general")
    )
    catalog = parse_catalog(text)
    assert catalog.routes["embed"].resident
    with ServerThread(make_app(catalog)) as server:
        manager = server.app.state.host.manager
        assert poll(lambda: manager.route_state("embed").value == "ready", 180)  # no request asked
        resident = engine_processes()
        assert resident
        chat(server.url, "coder-fast")
        coder = engine_processes() - resident
        chat(server.url, "chat-general")
        assert poll(lambda: not (engine_processes() & coder), 30)  # coder's engine is gone...
        chat(server.url, "coder-fast")
        assert resident <= engine_processes()  # ... the resident one never was
        response = httpx.post(
            f"{server.url}/v1/embeddings", json={"model": "embed-tiny", "input": ["a", "b"]}, timeout=120
        )
        assert response.status_code == 200, response.text
        assert [len(d["embedding"]) for d in response.json()["data"]] == [EMBEDDER_HIDDEN_SIZE] * 2
        stats = {m["route"]: m for m in httpx.get(f"{server.url}/stats").json()["models"]}
        assert stats["embed"]["resident"] is True and stats["coder"]["resident"] is False
        assert (stats["embed"]["loads"], stats["embed"]["evictions"]) == (1, 0)
        assert (stats["coder"]["loads"], stats["chat"]["loads"], stats["chat"]["evictions"]) == (2, 1, 1)
        assert resident <= engine_processes()
    assert poll(lambda: not engine_processes(), 30)

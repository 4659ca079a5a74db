"""The lifecycle can fail but never wedge: an error in one model's handling puts that
model in a safe state (failed, its engine shut down) and the others carry on; if the
scheduler task ends anyway, /healthz says so and the host exits non-zero for systemd."""

from __future__ import annotations

import asyncio

import pytest

from llmhost.config import RouteConfig
from llmhost.errors import ModelUnavailable
from llmhost.lifecycle import model_pass
from llmhost.lifecycle.context import Context
from llmhost.lifecycle.slot import Slot
from llmhost.lifecycle.state import ModelState
from llmhost.server import app as host_app
from tests.apphelp import envelope, make_app, running
from tests.fakes import Recorder, catalog
from tests.lifecycle.support import GatedRecorder, start_manager, use, wait_state, wait_until, within


async def test_an_error_in_a_pass_fails_that_model_and_the_others_carry_on() -> None:
    def preflight(route: RouteConfig) -> str | None:
        if route.name == "a":
            raise OSError("psutil could not read /proc")  # a bug or a broken dependency
        return None

    rec = Recorder()
    manager, _ = start_manager(rec, preflight=preflight, retry_backoff_seconds=10)
    with pytest.raises(ModelUnavailable, match="psutil could not read /proc"):
        await within(use(manager, "a"))
    stats = {s["route"]: s for s in manager.snapshot()}["a"]
    assert stats["state"] == "failed" and "OSError" in str(stats["last_error"])
    await within(use(manager, "b"))  # the scheduler still runs, for every other model
    assert rec.events == ["load b"]
    await manager.close()


async def test_an_error_in_an_apply_fails_the_model_and_shuts_its_engine_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_to = Slot.to
    tripped: list[bool] = []

    def to(slot: Slot, new: ModelState) -> None:
        if slot.route.name == "a" and new is ModelState.READY and not tripped:
            tripped.append(True)
            raise RuntimeError("bookkeeping bug while applying the load")
        real_to(slot, new)

    monkeypatch.setattr(Slot, "to", to)
    rec = Recorder()
    manager, clock = start_manager(rec, retry_backoff_seconds=10)
    with pytest.raises(ModelUnavailable, match="bookkeeping bug"):
        await within(use(manager, "a"))
    assert manager.route_state("a") is ModelState.FAILED
    # The engine it had started belongs to nobody now: it is shut down, not leaked.
    await wait_until(manager, lambda: "a" not in rec.live)
    assert rec.events == ["load a", "stop a"]
    await within(use(manager, "b"))
    clock.advance(10)  # after the backoff the model loads again, as after any failure
    await within(use(manager, "a"))
    assert rec.loads == {"a": 2, "b": 1}
    await manager.close()
    assert rec.live == set()


async def test_an_error_while_an_engine_serves_revokes_its_requests_and_stops_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recorder()
    manager, _ = start_manager(rec, idle_seconds=60)
    lease = await within(manager.acquire("a"))
    scheduler = manager.scheduler

    def broken_idle_check(ctx: Context, slot: Slot, now: float, deadlines: list[float]) -> None:
        raise KeyError("idle bookkeeping")

    monkeypatch.setattr(model_pass, "check_idle", broken_idle_check)
    scheduler.poke()
    await wait_state(manager, "a", ModelState.FAILED)
    assert lease.revoked is not None and "idle bookkeeping" in lease.revoked
    await wait_until(manager, lambda: rec.live == set())
    manager.release(lease)
    monkeypatch.undo()
    await manager.close()


async def test_a_dead_scheduler_answers_503_and_the_host_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = GatedRecorder()
    rec.gate("load a")
    app = make_app(catalog("exclusive", ("a", "b")), factory=rec.factory)
    stops: list[str] = []
    async with running(app) as client:
        app.state.stop_server = lambda: stops.append("stop")
        manager = app.state.host.manager
        waiter = asyncio.create_task(manager.acquire("a"))
        await within(rec.reached("load a").wait())

        def crash() -> float | None:
            raise RuntimeError("scheduler bug")

        monkeypatch.setattr(manager.scheduler, "_schedule", crash)
        manager.scheduler.poke()
        await within(manager.scheduler_ended.wait())
        # Nobody waits for a scheduler that is gone: waiting requests get 503 at once, ...
        with pytest.raises(ModelUnavailable, match="scheduler bug"):
            await within(waiter)
        with pytest.raises(ModelUnavailable, match="scheduler bug"):
            await within(manager.acquire("b"))  # ... and so do new ones
        health = await client.get("/healthz")
        assert health.status_code == 503
        assert "scheduler bug" in envelope(health.json())["message"]
        assert stops == ["stop"]  # the server is told to stop ...
        assert host_app.exit_status(app) == host_app.EXIT_SCHEDULER_STOPPED != 0  # ... and exits non-zero
    assert rec.live == set()

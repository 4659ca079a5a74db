"""Standby's rules (llmhost.lifecycle.standby). The platform answer is three-valued:
unknown, available, unavailable; until vLLM has answered, a standby route's load waits
instead of sizing for a sleep mode that may not exist. The RAM budget's plan keeps asleep
models within standby_ram_gib. Standby through the manager, swap by swap, is in
tests/lifecycle/test_standby_swaps.py."""

from __future__ import annotations

import asyncio
import threading

import pytest

from llmhost.lifecycle.standby import Asleep, plan_standby
from llmhost.units import GIB
from tests.fakes import FakeGpu, Recorder
from tests.lifecycle.support import settled, start_manager, use, wait_until, within

STANDBY = {"standby": "sleep", "sleep_level": 1}


@pytest.mark.parametrize(
    ("answer", "budget_gib"),
    [("no sleep mode on this machine's cpu platform", 16 - 0.75), (None, 16 - 0.75 - 0.75)],
)
async def test_a_standby_load_waits_for_the_platform_answer(answer: str | None, budget_gib: float) -> None:
    rec = Recorder(gpu=FakeGpu(total_bytes=16 * GIB))
    asked, answered = threading.Event(), threading.Event()

    def check() -> str | None:  # vLLM's platform detection, slow on a first import
        asked.set()
        answered.wait(60)
        return answer

    manager, _ = start_manager(rec, every_route=STANDBY, standby_query=check)
    request = asyncio.create_task(use(manager, "a"))
    await wait_until(manager, lambda: bool(manager.slots["a"].waiting))
    await within(asyncio.to_thread(asked.wait, 60))
    await settled(manager)
    assert rec.events == []  # nothing loads on a guess
    stats = {s["route"]: s for s in manager.snapshot()}["a"]
    assert stats["standby"] == "checking" and stats["state"] == "stopped" and stats["waiting"] == 1
    answered.set()
    await within(request)
    # Unavailable: no room kept for b asleep later, since nothing will sleep; available:
    # engine_margin_gib kept for b's engine asleep beside a.
    a = {s["route"]: s for s in manager.snapshot()}["a"]
    assert a["memory_budget_bytes"] == pytest.approx(budget_gib * GIB, abs=GIB / 1000)
    assert a["standby"] == ("unavailable" if answer else "on")
    await manager.close()


async def test_the_platform_question_waits_for_the_imports_without_a_thread() -> None:
    # The app asks vLLM only once its background imports are done (two threads importing
    # vLLM at once can deadlock); that wait is on the loop, not a worker thread held for
    # up to 300 s while early requests need the executor.
    rec = Recorder(gpu=FakeGpu(total_bytes=16 * GIB))
    imports_done = asyncio.Event()
    asked = threading.Event()

    def check() -> str | None:
        asked.set()
        return None

    manager, _ = start_manager(rec, every_route=STANDBY, standby_query=check, standby_after=imports_done.wait)
    await settled(manager)
    assert not asked.is_set()
    assert {s["route"]: s for s in manager.snapshot()}["a"]["standby"] == "checking"
    imports_done.set()
    await within(asyncio.to_thread(asked.wait, 60))
    await wait_until(manager, lambda: {s["route"]: s for s in manager.snapshot()}["a"]["standby"] == "on")
    await manager.close()


@pytest.mark.parametrize(
    ("need_gib", "held", "budget_gib", "sleeps", "shut_down"),
    [
        (2, [], 4, True, ()),  # room
        (2, [("x", 2, 1)], 4, True, ()),  # exactly fits
        (2, [("x", 2, 5), ("y", 2, 1)], 4, True, ("y",)),  # least recently used goes first
        (3, [("x", 2, 5), ("y", 2, 1)], 4, True, ("y", "x")),
        (5, [("x", 1, 1)], 4, False, ()),  # more than the whole budget: shut this one down
        (0, [("x", 4, 1)], 4, True, ()),  # level 2 holds no RAM
    ],
)
def test_plan_standby_keeps_asleep_models_within_the_ram_budget(
    need_gib: float,
    held: list[tuple[str, float, float]],
    budget_gib: float,
    sleeps: bool,
    shut_down: tuple[str, ...],
) -> None:
    others = [Asleep(name, int(gib * GIB), used) for name, gib, used in held]
    plan = plan_standby("t", int(need_gib * GIB), int(budget_gib * GIB), others)
    assert (plan.sleep, plan.shut_down) == (sleeps, shut_down), plan.reason

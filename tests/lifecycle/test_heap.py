"""The heap is frozen while models are loaded and thawed before each unload (llmhost.lifecycle.heap)."""

from __future__ import annotations

import asyncio
import gc
from typing import ClassVar

from llmhost.lifecycle.manager import ModelManager
from tests.fakes import FakeBackend, FakeGpu, Recorder, catalog


class _Watched(FakeBackend):
    frozen_at_stop: ClassVar[list[int]] = []

    async def stop(self) -> None:
        _Watched.frozen_at_stop.append(gc.get_freeze_count())
        await super().stop()


async def test_frozen_after_a_load_thawed_for_each_unload() -> None:
    rec = Recorder(gpu=FakeGpu())
    manager = ModelManager(catalog(), lambda route, host: _Watched(route, rec), FakeGpu())
    manager.start()
    try:
        async with manager.lease("a"):
            assert gc.get_freeze_count() > 0  # the loaded model's objects are out of reach
        async with manager.lease("b"):  # a is unloaded first
            pass
        assert _Watched.frozen_at_stop == [0]  # nothing frozen while a stopped: its objects can go
        assert gc.get_freeze_count() > 0  # b's, frozen again
    finally:
        await manager.close()
    assert gc.get_freeze_count() == 0  # a closed host leaves the collector as it found it


async def test_the_last_release_still_starts_the_idle_timer() -> None:
    # A release wakes the scheduler only when there is something to do (manager.release).
    rec = Recorder()
    manager = ModelManager(catalog(idle_seconds=0.3), rec.factory, FakeGpu())
    manager.start()
    try:
        first = await manager.acquire("a")
        second = await manager.acquire("a")
        manager.release(first)  # b still holds it: nothing for the pass to do
        await asyncio.sleep(0.5)
        assert rec.events == ["load a"]  # not idle while a request holds it
        manager.release(second)  # idle now: its timer starts, and it is unloaded
        await asyncio.sleep(0.6)
        assert rec.events == ["load a", "stop a"]
    finally:
        await manager.close()

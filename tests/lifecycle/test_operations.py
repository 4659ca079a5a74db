"""The slow GPU work on the fake backend: each operation returns its outcome, touches no slot."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from llmhost.backends.base import LoadFailed
from llmhost.config import Catalog, RouteConfig
from llmhost.lifecycle import operations
from llmhost.lifecycle.operations import Abandoned, Failed, Loaded, Reclaimed, Stopped
from llmhost.units import GIB
from tests.fakes import FakeBackend, FakeGpu, Recorder, catalog


@pytest.fixture
def cat() -> Catalog:
    return catalog("exclusive", ("a",))


@pytest.fixture
def rec() -> Recorder:
    recorder = Recorder(gpu=FakeGpu(total_bytes=16 * GIB))
    recorder.memory = {"a": 5 * GIB}
    return recorder


def _route(cat: Catalog) -> RouteConfig:
    return cat.routes["a"]


async def _load(
    rec: Recorder, cat: Catalog, abort: asyncio.Future[str] | None = None
) -> operations.LoadOutcome:
    assert rec.gpu is not None
    return await operations.load(
        rec.factory,
        _route(cat),
        cat.host,
        abort=abort if abort is not None else asyncio.get_running_loop().create_future(),
        monitor=rec.gpu,
        before=rec.gpu.memory(),
        started=time.monotonic(),
        clock=time.monotonic,
    )


async def test_load_returns_the_backend_and_what_it_took(rec: Recorder, cat: Catalog) -> None:
    outcome = await _load(rec, cat)
    assert isinstance(outcome, Loaded)
    assert isinstance(outcome.backend, FakeBackend) and outcome.backend.route.name == "a"
    assert outcome.measured_bytes == 5 * GIB
    assert rec.load_seconds <= outcome.elapsed < 2
    assert rec.live == {"a"}


async def test_load_without_readings_measures_nothing(rec: Recorder, cat: Catalog) -> None:
    assert rec.gpu is not None
    outcome = await operations.load(
        rec.factory,
        _route(cat),
        cat.host,
        abort=asyncio.get_running_loop().create_future(),
        monitor=rec.gpu,
        before=None,
        started=time.monotonic(),
        clock=time.monotonic,
    )
    assert isinstance(outcome, Loaded) and outcome.measured_bytes is None


async def test_failed_start_stops_the_backend_and_says_why(rec: Recorder, cat: Catalog) -> None:
    rec.fail["a"] = RuntimeError("weights missing")
    outcome = await _load(rec, cat)
    assert isinstance(outcome, Failed) and "weights missing" in outcome.reason
    assert rec.events == ["load a", "stop a"]


async def test_load_failed_is_reported_as_its_own_line(rec: Recorder, cat: Catalog) -> None:
    rec.fail["a"] = LoadFailed("CUDA out of memory (the engine's own words)")
    outcome = await _load(rec, cat)
    assert outcome == Failed("CUDA out of memory (the engine's own words)")


async def test_abort_abandons_the_load_and_reclaim_finishes_it(rec: Recorder, cat: Catalog) -> None:
    rec.hang.add("a")
    abort: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.1, abort.set_result, "the host is shutting down")
    outcome = await _load(rec, cat, abort=abort)
    assert isinstance(outcome, Abandoned) and outcome.reason == "the host is shutting down"
    assert rec.events == ["load a"]  # not stopped yet: that is the next operation's work
    assert outcome.start is not None and not outcome.start.done()
    assert rec.gpu is not None
    back = await operations.reclaim(
        outcome, monitor=rec.gpu, before=rec.gpu.memory(), settle_seconds=1, clock=time.monotonic
    )
    assert back == Reclaimed(0)
    assert rec.events == ["load a", "stop a"]
    assert outcome.start.done()  # the start returned once its backend was stopped


async def test_a_load_abandoned_before_it_began_starts_nothing(rec: Recorder, cat: Catalog) -> None:
    """A stop that comes before the operation ran: the load gives up at once."""
    abort: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    abort.set_result("the route was removed from the configuration")
    outcome = await _load(rec, cat, abort=abort)
    assert outcome == Abandoned("the route was removed from the configuration", _route(cat))
    assert rec.gpu is not None
    back = await operations.reclaim(
        outcome, monitor=rec.gpu, before=rec.gpu.memory(), settle_seconds=1, clock=time.monotonic
    )
    assert back == Reclaimed(None)
    assert rec.events == [] and rec.live == set()


async def test_unload_stops_the_engine(rec: Recorder, cat: Catalog) -> None:
    loaded = await _load(rec, cat)
    assert isinstance(loaded, Loaded)
    assert await operations.unload(loaded.backend, _route(cat)) == Stopped()
    assert rec.events == ["load a", "stop a"] and rec.live == set()
    assert await operations.unload(None, _route(cat)) == Stopped()  # nothing to stop


async def test_a_stop_that_raises_counts_as_stopped(
    rec: Recorder, cat: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    class Stubborn(FakeBackend):
        async def stop(self) -> None:
            raise RuntimeError("engine already gone")

    with caplog.at_level(logging.WARNING, logger="llmhost.lifecycle"):
        assert await operations.unload(Stubborn(_route(cat), rec), _route(cat)) == Stopped()
    assert "treating it as stopped" in caplog.text and "engine already gone" in caplog.text


async def test_memory_back_waits_for_late_memory(rec: Recorder, cat: Catalog) -> None:
    assert rec.gpu is not None
    rec.gpu.release_lag = 0.3
    loaded = await _load(rec, cat)
    assert isinstance(loaded, Loaded)
    before = rec.gpu.memory()
    await operations.unload(loaded.backend, _route(cat))
    assert rec.gpu.memory() == before  # the driver has not reported it yet
    back = await operations.memory_back(
        monitor=rec.gpu,
        before=before,
        expected_bytes=loaded.measured_bytes,
        settle_seconds=5,
        clock=time.monotonic,
    )
    assert back == Reclaimed(5 * GIB)

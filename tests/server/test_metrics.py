"""/metrics from the manager's own counts: counters, the cold-start histogram, 503s by reason.

The manager runs the fake backend; the scrape is `render_metrics` on its snapshot, read
back with prometheus_client's own text parser (names, types and values as Prometheus
would see them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmhost.errors import ModelUnavailable, Overloaded, ShuttingDown
from llmhost.gpu.monitor import NullMonitor
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.state import ModelState
from llmhost.server.metrics import render_metrics
from llmhost.units import GIB
from tests.apphelp import until_state
from tests.fakes import FakeGpu, Recorder, catalog, no_sleep_mode
from tests.lifecycle.clock import ManualClock

NO_GPU = {"available": False, "reason": "test"}


def scrape(manager: ModelManager) -> dict[str, dict[tuple[str, ...], float]]:
    """sample name -> {sorted label items flattened: value}, via the real text parser."""
    body, content_type = render_metrics(manager.snapshot(), NO_GPU)
    assert content_type.startswith("text/plain")
    samples: dict[str, dict[tuple[str, ...], float]] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(body.decode()):
        types[family.name] = family.type
        for sample in family.samples:
            key = tuple(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    assert types["llmhost_model_loads"] == "counter"
    assert types["llmhost_model_swaps"] == "counter"
    assert types["llmhost_model_evictions"] == "counter"
    assert types["llmhost_model_load_failures"] == "counter"
    assert types["llmhost_requests_refused"] == "counter"
    assert types["llmhost_model_cold_start_seconds"] == "histogram"
    return samples


def of(route: str, **labels: str) -> tuple[str, ...]:
    items = {"route": route, "model": f"{route}-model", **labels}
    return tuple(f"{k}={v}" for k, v in sorted(items.items()))


@asynccontextmanager
async def started(manager: ModelManager) -> AsyncIterator[ModelManager]:
    manager.start()
    try:
        yield manager
    finally:
        await manager.close()


async def _use(manager: ModelManager, route: str) -> None:
    async with manager.lease(route):
        await asyncio.sleep(0.01)


async def test_counters_histogram_and_refusals() -> None:
    rec = Recorder(load_seconds=0.1)
    rec.fail["c"] = RuntimeError("no weights")
    host = catalog("exclusive", ("a", "b", "c"), max_waiting=1, retry_backoff_seconds=60)
    manager = ModelManager(host, rec.factory, NullMonitor("test"), standby_query=no_sleep_mode)
    async with started(manager):
        first = asyncio.create_task(_use(manager, "a"))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):  # one may wait, the second is refused
            await _use(manager, "a")
        await first
        await _use(manager, "b")  # swaps a out
        await _use(manager, "a")  # and back
        for _ in range(2):  # a failed load, then a refusal within its backoff
            with pytest.raises(ModelUnavailable, match="no weights"):
                await _use(manager, "c")

        m = scrape(manager)
        assert m["llmhost_model_loads_total"] == {of("a"): 2, of("b"): 1, of("c"): 0}
        assert m["llmhost_model_swaps_total"] == {of("a"): 1, of("b"): 1, of("c"): 0}
        # a made room for b, then for c's attempt; b made room for a.
        assert m["llmhost_model_evictions_total"] == {of("a"): 2, of("b"): 1, of("c"): 0}
        assert m["llmhost_model_load_failures_total"] == {of("a"): 0, of("b"): 0, of("c"): 1}
        refused = m["llmhost_requests_refused_total"]
        assert refused[of("a", reason="overloaded")] == 1
        assert refused[of("c", reason="load_failed")] == 2
        assert refused[of("a", reason="shutting_down")] == 0  # every reason present from the start
        assert sum(refused.values()) == 3
        # Cold starts of 0.1 s: all in the first bucket (1 s) and up.
        buckets = m["llmhost_model_cold_start_seconds_bucket"]
        assert buckets[of("a", le="1.0")] == 2 and buckets[of("a", le="+Inf")] == 2
        assert buckets[of("a", le="600.0")] == 2 and buckets[of("c", le="+Inf")] == 0
        assert m["llmhost_model_cold_start_seconds_count"][of("a")] == 2
        assert 0.2 <= m["llmhost_model_cold_start_seconds_sum"][of("a")] < 2

        await _use(manager, "b")
        await manager.close()
        with pytest.raises(ShuttingDown):
            await _use(manager, "b")
        m = scrape(manager)
        assert m["llmhost_requests_refused_total"][of("b", reason="shutting_down")] == 1
        assert m["llmhost_model_evictions_total"][of("b")] == 2  # the shutdown unloaded it
        assert m["llmhost_model_swaps_total"][of("b")] == 1  # nothing was resident to evict


async def test_start_timeout_is_counted() -> None:
    rec = Recorder()
    rec.hang.add("a")
    clock = ManualClock()
    host = catalog("exclusive", ("a",), start_timeout_seconds=300)
    async with started(
        ModelManager(host, rec.factory, NullMonitor("test"), clock=clock, standby_query=no_sleep_mode)
    ) as manager:
        request = asyncio.create_task(_use(manager, "a"))
        await asyncio.wait_for(until_state(manager, "a", ModelState.LOADING), 30)
        clock.advance(300)
        with pytest.raises(ModelUnavailable):
            await asyncio.wait_for(request, 30)
        # The abandoned load counts as failed once its engine is taken back.
        await asyncio.wait_for(until_state(manager, "a", ModelState.FAILED), 30)
        m = scrape(manager)
        assert m["llmhost_model_load_failures_total"][of("a")] == 1
        assert m["llmhost_requests_refused_total"][of("a", reason="start_timeout")] == 1


async def test_does_not_fit_is_counted() -> None:
    rec = Recorder(gpu=FakeGpu(total_bytes=8 * GIB))
    host = catalog("fit", ("a",))
    async with started(ModelManager(host, rec.factory, rec.gpu, standby_query=no_sleep_mode)) as manager:  # type: ignore[arg-type]
        slot = manager.slots["a"]
        slot.route = slot.route.model_copy(update={"memory_gib": 12.0})
        with pytest.raises(ModelUnavailable, match="cannot be loaded"):
            await _use(manager, "a")
        m = scrape(manager)
        assert m["llmhost_requests_refused_total"][of("a", reason="does_not_fit")] == 1
        assert m["llmhost_model_load_failures_total"][of("a")] == 0  # nothing was started
        assert rec.events == []

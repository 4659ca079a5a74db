"""Cold starts and wakes are kept as histogram counters plus a bounded window of recent
values: memory and /metrics' work stay the same after ten thousand loads as after one."""

from __future__ import annotations

from llmhost.lifecycle.slot import COLD_START_BUCKETS, Slot
from llmhost.server.metrics import render_metrics
from tests.fakes import catalog


def test_ten_thousand_cold_starts_keep_a_bounded_window_and_exact_counts() -> None:
    slot = Slot(catalog("exclusive", ("a",)).routes["a"])
    for i in range(10_000):
        slot.cold_starts.add(float(i % 100))  # 0..99 s, a hundred times each
        slot.standby.wake_seconds.add(0.5)
    assert len(slot.cold_starts.recent) <= 100 and len(slot.standby.wake_seconds.recent) <= 100
    stats = slot.stats(0.0)
    histogram = stats["cold_start_histogram"]
    assert histogram["count"] == 10_000 and histogram["sum"] == 100 * sum(range(100))
    buckets = dict((le, count) for le, count in histogram["buckets"])
    assert buckets[1.0] == 200 and buckets[60.0] == 6_100 and buckets[600.0] == 10_000
    assert [le for le, _ in histogram["buckets"]] == list(COLD_START_BUCKETS)
    assert stats["cold_start_seconds"] == {"last": 99.0, "median": 49.5, "max": 99.0}  # the last 100
    assert stats["wake_histogram"]["count"] == 10_000
    body, _ = render_metrics([stats], {"available": False})
    assert b'llmhost_model_cold_start_seconds_count{model="a-model",route="a"} 10000.0' in body

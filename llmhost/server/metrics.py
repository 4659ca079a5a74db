"""Prometheus text for /metrics: llmhost's own series, then every loaded engine's.

Our series are built fresh at each scrape from the manager's snapshot by a collector of
our own (counters and the cold-start histogram from the per-model counts in
`Slot.stats`), so nothing here is a module-level singleton. vLLM keeps one set of `vllm:`
metrics in prometheus_client's global registry and drops the previous engine's when
a new one starts; each backend keeps its engine's collectors instead, and here the
families of all resident engines are merged (their samples differ by `model_name`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

_STATES = ("stopped", "loading", "ready", "unloading", "failed", "sleeping", "asleep", "waking")
_STANDBY = ("off", "checking", "on", "unavailable", "disabled")
_LABELS = ["route", "model"]


def render_metrics(
    models: list[dict[str, Any]], gpu: dict[str, Any], engine_collectors: Iterable[Any] = ()
) -> tuple[bytes, str]:
    body = generate_latest(_Host(models, gpu)) + generate_latest(_Merged(engine_collectors))
    return body, CONTENT_TYPE_LATEST


class _Host:
    """llmhost's own families from one snapshot (quacks like a registry for generate_latest).

    Counters come from the manager's per-model counts, which only grow while the host runs
    (a route removed by a reload takes its series with it, as a restart does).
    """

    def __init__(self, models: list[dict[str, Any]], gpu: dict[str, Any]) -> None:
        self._models = models
        self._gpu = gpu

    def collect(self) -> Iterator[Metric]:
        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*_LABELS, *extra])

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=[*_LABELS, *extra])

        state = gauge("llmhost_model_state", "1 for the model's current state", ("state",))
        loads = counter("llmhost_model_loads", "Successful loads since start")
        swaps = counter("llmhost_model_swaps", "Loads that evicted another model first")
        evictions = counter("llmhost_model_evictions", "Unloads (idle, making room, reload, shutdown)")
        failures = counter("llmhost_model_load_failures", "Loads that failed (error, timeout, no memory)")
        refused = counter(
            "llmhost_requests_refused",
            "Requests answered 503 for this model, by reason",
            ("reason",),
        )
        cold = HistogramMetricFamily(
            "llmhost_model_cold_start_seconds", "Duration of successful loads", labels=_LABELS
        )
        cold_last = gauge("llmhost_model_cold_start_seconds_last", "Duration of the last load")
        leases = gauge("llmhost_model_requests_in_flight", "Requests holding the model")
        waiting = gauge("llmhost_model_requests_waiting", "Requests waiting for the model")
        memory = gauge("llmhost_model_memory_bytes", "GPU memory measured at the last load")
        standby = gauge(
            "llmhost_model_standby", "1 for the route's standby setting as it stands", ("standby",)
        )
        sleeps = counter("llmhost_model_sleeps", "Times the model was put to sleep instead of unloaded")
        wakes = counter("llmhost_model_wakes", "Wakes whose probe matched (the model served again)")
        wake_failures = counter(
            "llmhost_model_wake_failures", "Wakes that failed or whose probe differed (then a cold load)"
        )
        wake_time = HistogramMetricFamily(
            "llmhost_model_wake_seconds", "Duration of successful wakes, probe included", labels=_LABELS
        )
        standby_ram = gauge("llmhost_model_standby_ram_bytes", "Host RAM held by the model while asleep")
        for m in self._models:
            key = [m["route"], m["model"]]
            for name in _STATES:
                state.add_metric([*key, name], 1 if m["state"] == name else 0)
            loads.add_metric(key, m["loads"])
            swaps.add_metric(key, m["swaps"])
            evictions.add_metric(key, m["evictions"])
            failures.add_metric(key, m["failed_loads"])
            for reason, count in m["refused"].items():
                refused.add_metric([*key, reason], count)
            histogram = m["cold_start_histogram"]
            buckets = [(floatToGoString(le), count) for le, count in histogram["buckets"]]
            cold.add_metric(key, [*buckets, ("+Inf", histogram["count"])], histogram["sum"])
            cold_last.add_metric(key, m["cold_start_seconds"]["last"] or 0)
            leases.add_metric(key, m["in_flight"])
            waiting.add_metric(key, m["waiting"])
            if m["memory_bytes"] is not None:
                memory.add_metric(key, m["memory_bytes"])
            for name in _STANDBY:
                standby.add_metric([*key, name], 1 if m["standby"] == name else 0)
            sleeps.add_metric(key, m["sleeps"])
            wakes.add_metric(key, m["wakes"])
            wake_failures.add_metric(key, m["wake_failures"])
            histogram = m["wake_histogram"]
            buckets = [(floatToGoString(le), count) for le, count in histogram["buckets"]]
            wake_time.add_metric(key, [*buckets, ("+Inf", histogram["count"])], histogram["sum"])
            standby_ram.add_metric(key, m["standby_ram_bytes"] or 0)
        yield from (state, loads, swaps, evictions, failures, refused, cold, cold_last)
        yield from (leases, waiting, memory, standby, sleeps, wakes, wake_failures, wake_time, standby_ram)
        if self._gpu["available"]:
            yield GaugeMetricFamily(
                "llmhost_gpu_memory_free_bytes", "Free GPU memory (NVML)", value=self._gpu["free_bytes"]
            )
            yield GaugeMetricFamily(
                "llmhost_gpu_memory_total_bytes", "Total GPU memory (NVML)", value=self._gpu["total_bytes"]
            )


class _Merged:
    """Quacks like a registry for generate_latest: one family per name, samples of all engines."""

    def __init__(self, collectors: Iterable[Any]) -> None:
        self._collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for collector in self._collectors:
            for family in collector.collect():
                known = families.get(family.name)
                if known is None:
                    families[family.name] = family
                else:
                    known.samples.extend(family.samples)
        yield from families.values()

"""Prometheus text for /metrics: llmhost's own series, then every loaded engine's.

Our series are built fresh at each scrape from the manager's snapshot, in a private
registry, so nothing here is a module-level singleton. vLLM keeps one set of `vllm:`
metrics in prometheus_client's global registry and drops the previous engine's when
a new one starts; each backend keeps its engine's collectors instead, and here the
families of all resident engines are merged (their samples differ by `model_name`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

_STATES = ("stopped", "loading", "ready", "unloading", "failed")


def render_metrics(
    models: list[dict[str, Any]], gpu: dict[str, Any], engine_collectors: Iterable[Any] = ()
) -> tuple[bytes, str]:
    registry = CollectorRegistry()
    labels = ["route", "model"]

    def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, [*labels, *extra], registry=registry)

    state = gauge("llmhost_model_state", "1 for the model's current state", ("state",))
    loads = gauge("llmhost_model_loads", "Loads since start")
    swaps = gauge("llmhost_model_swaps", "Loads that evicted another model")
    cold = gauge("llmhost_model_cold_start_seconds_last", "Duration of the last load")
    leases = gauge("llmhost_model_requests_in_flight", "Requests holding the model")
    waiting = gauge("llmhost_model_requests_waiting", "Requests waiting for the model")
    memory = gauge("llmhost_model_memory_bytes", "GPU memory measured at the last load")
    for m in models:
        key = (m["route"], m["model"])
        for name in _STATES:
            state.labels(*key, name).set(1 if m["state"] == name else 0)
        loads.labels(*key).set(m["loads"])
        swaps.labels(*key).set(m["swaps"])
        cold.labels(*key).set(m["cold_start_seconds"]["last"] or 0)
        leases.labels(*key).set(m["in_flight"])
        waiting.labels(*key).set(m["waiting"])
        if m["memory_bytes"] is not None:
            memory.labels(*key).set(m["memory_bytes"])
    if gpu["available"]:
        Gauge("llmhost_gpu_memory_free_bytes", "Free GPU memory (NVML)", registry=registry).set(
            gpu["free_bytes"]
        )
        Gauge("llmhost_gpu_memory_total_bytes", "Total GPU memory (NVML)", registry=registry).set(
            gpu["total_bytes"]
        )
    body = generate_latest(registry) + generate_latest(_Merged(engine_collectors))
    return body, CONTENT_TYPE_LATEST


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

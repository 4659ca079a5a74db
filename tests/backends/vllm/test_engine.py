"""vLLM's AsyncLLM itself (llmhost.backends.vllm.engine): the start method of its workers, the
order of its shutdown, and which metrics collectors are its. Real engines start and stop in
test_backend.py and through the app; here only the host's own choices around them."""

from __future__ import annotations

import asyncio
import os

import pytest
from prometheus_client import REGISTRY, Gauge

from llmhost.backends.vllm.engine import SHUTDOWN_TIMEOUT_SECONDS, shutdown, use_spawn, vllm_collectors


def test_workers_are_spawned_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_WORKER_MULTIPROC_METHOD", raising=False)
    use_spawn()
    assert os.environ["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"
    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "fork")
    use_spawn()
    assert os.environ["VLLM_WORKER_MULTIPROC_METHOD"] == "fork"


class _Engine:
    """The two parts of vLLM's AsyncLLM a shutdown touches: its output handler task on
    this loop, and its blocking shutdown(timeout)."""

    def __init__(self) -> None:
        self.output_handler = asyncio.ensure_future(asyncio.Event().wait())
        self.calls: list[tuple[bool, float]] = []

    def shutdown(self, timeout: float) -> None:
        self.calls.append((self.output_handler.cancelled(), timeout))


async def test_the_output_handler_is_cancelled_before_the_engine_shuts_down() -> None:
    engine = _Engine()
    await shutdown(engine)
    # Cancelled and finished first: it never sees the engine core gone (no EngineDeadError).
    assert engine.calls == [(True, SHUTDOWN_TIMEOUT_SECONDS)]


def test_the_engines_collectors_are_the_vllm_ones() -> None:
    ours = Gauge("vllm:llmhost_test_gauge", "a vLLM-named series")
    other = Gauge("llmhost_test_other_gauge", "not vLLM's")
    try:
        found = vllm_collectors()
        assert ours in found and other not in found
    finally:
        REGISTRY.unregister(ours)
        REGISTRY.unregister(other)

"""The vLLM backend's start and stop: a real tiny engine's start reports its phases, and a
stop while vLLM's engine is being created shuts down whatever the start produces afterwards,
even when it finishes after the backend stopped waiting for it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from llmhost.backends.base import STOP_BOUND_SECONDS
from llmhost.backends.vllm import backend as vllm
from llmhost.backends.vllm.backend import EngineStartError, VllmBackend
from llmhost.config import HostConfig, parse_catalog
from llmhost.config.text import toml_table
from llmhost.tiny_models import tiny_engine_args
from tests.fakes import catalog


@pytest.mark.engine
async def test_a_real_engine_on_cpu_reports_the_phases_it_has(tiny_models: Any) -> None:
    # Compiled (no enforce_eager), so the CPU backend's compile phases exist too; vLLM's
    # compile cache may hold the model from an earlier run (a hit) or not (a miss).
    engine = {**tiny_engine_args(), "enforce_eager": False, "max_model_len": 4096}
    route = {"kind": "llm", "model": str(tiny_models.llm), "served_names": ["coder-fast"], "engine": engine}
    backend = VllmBackend(
        parse_catalog("\n".join(toml_table("routes.coder", route))).routes["coder"], HostConfig()
    )
    await backend.start()
    try:
        assert backend.engine_start is not None
        phases = {p.phase: p for p in backend.engine_start.phases}
    finally:
        await backend.stop()
    expected = {"engine_process", "worker_setup", "model_init", "weights", "compile_warmup", "compile_cache"}
    assert expected | {"profile_run", "kv_cache", "kv_cache_size", "engine_init", "engine_ready"} <= set(
        phases
    )
    assert (phases["compile_cache"].detail or "").startswith(("cache hit", "cache miss"))
    assert phases["kv_cache"].gib == 0.06 and "131,072 tokens" in (phases["kv_cache_size"].detail or "")
    # The timeline adds up: the engine was ready after its process, worker and init steps.
    steps = (
        phases["engine_process"].seconds or 0,
        phases["worker_setup"].seconds or 0,
        phases["engine_init"].seconds or 0,
    )
    assert sum(steps) <= (phases["engine_ready"].seconds or 0) + 1.0
    # No phase only a GPU has.
    assert not {"model_load", "cuda_graphs", "torch_compile", "dynamo"} & set(phases)


class _NoProcesses:
    """The engine's processes, when there are none to watch or kill."""

    def start_watching(self) -> None: ...

    def stop_watching(self) -> None: ...

    def add(self, procs: Any) -> None: ...

    def kill(self) -> None: ...

    def wait_gone(self, timeout: float) -> list[int]:
        return []


class _Engine:
    """Stands for the AsyncLLM that vLLM's start returns."""


def _backend(monkeypatch: pytest.MonkeyPatch) -> tuple[VllmBackend, list[Any], asyncio.Event]:
    monkeypatch.setattr(vllm, "EngineProcesses", _NoProcesses)
    backend = VllmBackend(catalog("exclusive", ("a",)).routes["a"], HostConfig())
    shut: list[Any] = []
    done = asyncio.Event()

    async def shutdown(engine: Any) -> None:
        shut.append(engine)
        done.set()

    monkeypatch.setattr(vllm, "shutdown", shutdown)
    return backend, shut, done


async def test_an_engine_finishing_after_the_abandon_bound_is_shut_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(vllm, "ABANDON_TIMEOUT_SECONDS", 0.2)  # the backend's own bound, made short
    backend, shut, done = _backend(monkeypatch)
    begun, release = threading.Event(), threading.Event()
    engine = _Engine()

    def create() -> Any:  # a start that ignores the kill (still reading a large config)
        begun.set()
        release.wait(60)
        return engine

    monkeypatch.setattr(backend, "_create_engine", create)
    start = asyncio.create_task(backend.start())
    await asyncio.wait_for(asyncio.to_thread(begun.wait, 30), 30)
    await asyncio.wait_for(backend.stop(), 30)  # gives up waiting after its bound
    assert shut == []
    release.set()  # the engine finishes starting now, with nobody waiting for it
    with pytest.raises(EngineStartError, match="abandoned"):
        await asyncio.wait_for(start, 30)
    await asyncio.wait_for(done.wait(), 30)
    assert shut == [engine] and backend.engine is None


async def test_a_stop_after_the_engine_was_created_but_before_the_start_took_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend, shut, _ = _backend(monkeypatch)
    engine = _Engine()
    created: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    created.set_result(engine)  # created; the start has not resumed to take it yet
    backend._creating = created
    await asyncio.wait_for(backend.stop(), 30)
    assert shut == [engine]


def test_a_vllm_stop_stays_within_the_bound_the_lifecycle_counts() -> None:
    """A request's default wait counts every backend's stop as base.STOP_BOUND_SECONDS;
    vLLM's stop (its shutdown, its processes' exit, the wait after a kill) must fit in it."""
    assert vllm.STOP_SECONDS <= STOP_BOUND_SECONDS
    assert vllm.PROCESS_EXIT_TIMEOUT_SECONDS < vllm.STOP_SECONDS

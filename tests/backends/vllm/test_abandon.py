"""A stop while vLLM's engine is being created: whatever the start produces afterwards is
shut down, even when it finishes after the backend stopped waiting for it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from llmhost.backends.vllm import backend as vllm
from llmhost.backends.vllm.backend import EngineStartError, VllmBackend
from llmhost.config import HostConfig
from tests.fakes import catalog


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

    monkeypatch.setattr(backend, "_shutdown", shutdown)
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

"""Engine libraries imported in the background: requests before it is done wait, visibly."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from llmhost.server.preload import MODULES_BY_KIND, Preloader


@pytest.fixture
def slow_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module whose import takes a second, like vLLM's (10-15 s on a small machine)."""
    name = f"llmhost_slow_{time.monotonic_ns()}"
    (tmp_path / f"{name}.py").write_text("import time\ntime.sleep(1.0)\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(MODULES_BY_KIND, "slow", (name,))
    return name


async def test_a_request_during_the_preload_waits_for_it(slow_module: str) -> None:
    preloader = Preloader(["slow"])
    preloader.start()
    await asyncio.sleep(0.1)
    assert not preloader.ready(slow_module)  # still importing (the module may half-exist)
    module: Any = await asyncio.wait_for(preloader.module(slow_module), 10)
    assert module.VALUE == 42
    assert preloader.ready(slow_module)
    started = time.monotonic()
    await preloader.module(slow_module)
    assert time.monotonic() - started < 0.1  # once done: no wait at all


async def test_without_a_preload_the_module_is_imported_off_the_loop(slow_module: str) -> None:
    preloader = Preloader([])  # no routes of that kind: nothing preloaded
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    module: Any = await preloader.module(slow_module)
    task.cancel()
    assert module.VALUE == 42
    assert ticks >= 10  # the event loop kept running during the 1 s import
    assert slow_module in sys.modules


def test_only_the_kinds_in_use_are_preloaded() -> None:
    assert Preloader(["diffusion"]).names == ("diffusers",)
    assert "vllm.v1.engine.async_llm" in Preloader(["llm", "llm"]).names
    assert Preloader([]).names == ()


def test_wait_all_returns_once_the_imports_are_done(slow_module: str) -> None:
    # The standby check waits so: two threads importing vLLM at once could deadlock.
    preloader = Preloader(["slow"])
    preloader.wait_all(timeout=0.2)  # not started yet: gives up at the timeout
    assert slow_module not in sys.modules
    preloader.start()
    preloader.wait_all(timeout=10)
    assert preloader.ready(slow_module)
    Preloader([]).wait_all(timeout=10)  # nothing to wait for: returns at once


class BlockedImport:
    """An import that runs until the test lets it finish: the preload stays in progress for
    exactly as long as the test needs, with no timing involved."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls: list[str] = []

    def __call__(self, name: str) -> ModuleType:
        self.calls.append(name)
        self.started.set()
        if not self.release.wait(60):
            raise TimeoutError("the test never released the import")
        module = ModuleType(name)
        module.VALUE = 42  # type: ignore[attr-defined]
        sys.modules[name] = module
        return module


@pytest.fixture
def blocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, BlockedImport]]:
    name = f"llmhost_blocked_{time.monotonic_ns()}"
    monkeypatch.setitem(MODULES_BY_KIND, "blocked", (name,))
    importer = BlockedImport()
    yield name, importer
    importer.release.set()
    sys.modules.pop(name, None)


async def test_requests_waiting_for_the_preload_hold_no_worker_thread(
    blocked: tuple[str, BlockedImport],
) -> None:
    # 32 requests arrive while the import runs: at least as many as the default executor has
    # threads on any machine (min(32, cores + 4)). Waiting must hold none of them, or every
    # other threaded job (estimates, engine starts, settling) stalls behind the import.
    name, importer = blocked
    preloader = Preloader(["blocked"], import_module=importer)
    preloader.start()
    await asyncio.to_thread(importer.started.wait, 30)
    requests = [asyncio.ensure_future(preloader.module(name)) for _ in range(32)]
    await asyncio.sleep(0)  # each request runs up to its wait
    assert not any(r.done() for r in requests)
    # Threaded work goes on meanwhile (the bound only ends the test if it cannot).
    assert await asyncio.wait_for(asyncio.to_thread(lambda: "other work"), 30) == "other work"
    assert not any(r.done() for r in requests)
    importer.release.set()
    modules: list[Any] = await asyncio.wait_for(asyncio.gather(*requests), 30)
    assert {m.VALUE for m in modules} == {42}
    assert importer.calls == [name]  # imported once, by the preload
    assert preloader.ready(name)


async def test_a_request_after_the_preload_finished_does_not_wait(blocked: tuple[str, BlockedImport]) -> None:
    name, importer = blocked
    importer.release.set()
    preloader = Preloader(["blocked"], import_module=importer)
    preloader.start()
    preloader.wait_all(timeout=30)
    module: Any = await preloader.module(name)  # no thread, no event: the module at once
    assert module.VALUE == 42 and importer.calls == [name]


async def test_settled_waits_for_every_import_on_the_loop(blocked: tuple[str, BlockedImport]) -> None:
    name, importer = blocked
    preloader = Preloader(["blocked"], import_module=importer)
    await asyncio.wait_for(Preloader(["blocked"]).settled(), 5)  # no preload started: at once
    preloader.start()
    await asyncio.to_thread(importer.started.wait, 30)
    waiting = asyncio.ensure_future(preloader.settled())
    await asyncio.sleep(0)
    assert not waiting.done()
    importer.release.set()
    await asyncio.wait_for(waiting, 30)
    assert preloader.ready(name)

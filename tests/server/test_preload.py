"""Engine libraries imported in the background: requests before it is done wait, visibly."""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from llmhost.server.preload import MODULES_BY_KIND, Preloader

T = TypeVar("T")


class SlowModule:
    """A real module on sys.path whose import runs until the test lets it finish, like vLLM's
    (10-15 s on a small machine): its code sets `started` and waits for `release`, both
    events of a gate module the test has imported itself. While it waits, the module
    half-exists in sys.modules, as a module being imported does."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        stamp = time.monotonic_ns()
        self.name = f"llmhost_slow_{stamp}"
        gate = f"llmhost_gate_{stamp}"
        (tmp_path / f"{gate}.py").write_text(
            "import threading\nstarted = threading.Event()\nrelease = threading.Event()\n"
        )
        (tmp_path / f"{self.name}.py").write_text(
            f"from {gate} import release, started\n"
            "started.set()\n"
            "if not release.wait(60):\n"
            "    raise TimeoutError('the test never released the import')\n"
            "VALUE = 42\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setitem(MODULES_BY_KIND, "slow", (self.name,))
        events = importlib.import_module(gate)
        self.started: threading.Event = events.started
        self.release: threading.Event = events.release


@pytest.fixture
def slow_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowModule]:
    slow = SlowModule(tmp_path, monkeypatch)
    yield slow
    slow.release.set()  # a failed test leaves no import thread waiting


def at_once(work: Coroutine[Any, Any, T]) -> T:
    """The result of `work`, which must finish without waiting for anything (it never suspends)."""
    try:
        work.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    work.close()
    raise AssertionError("it waited")


async def test_a_request_during_the_preload_waits_for_it(slow_module: SlowModule) -> None:
    name = slow_module.name
    preloader = Preloader(["slow"])
    preloader.start()
    assert await asyncio.to_thread(slow_module.started.wait, 30)  # the import runs now
    assert name in sys.modules  # half-imported ...
    assert not preloader.ready(name)  # ... so still importing
    request = asyncio.ensure_future(preloader.module(name))
    await asyncio.sleep(0)  # one turn: the request runs up to its wait
    assert not request.done()
    slow_module.release.set()
    module: Any = await asyncio.wait_for(request, 10)
    assert module.VALUE == 42
    assert preloader.ready(name)
    assert at_once(preloader.module(name)) is module  # once done: no wait at all


async def test_without_a_preload_the_module_is_imported_off_the_loop(slow_module: SlowModule) -> None:
    preloader = Preloader([])  # no routes of that kind: nothing preloaded
    request = asyncio.ensure_future(preloader.module(slow_module.name))
    # The loop goes on while the import waits for its release: an import on the loop would
    # hold it until the import gave up (60 s), and the request would have failed by then.
    assert await asyncio.to_thread(slow_module.started.wait, 30)
    assert not request.done()
    slow_module.release.set()
    module: Any = await asyncio.wait_for(request, 10)
    assert module.VALUE == 42
    assert slow_module.name in sys.modules


def test_only_the_kinds_in_use_are_preloaded() -> None:
    assert Preloader(["diffusion"]).names == ("diffusers",)
    assert "vllm.v1.engine.async_llm" in Preloader(["llm", "llm"]).names
    assert Preloader([]).names == ()


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
    await asyncio.wait_for(preloader.settled(), 30)
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

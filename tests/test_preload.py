"""Engine libraries imported in the background: requests before it is done wait, visibly."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from llmhost.preload import MODULES_BY_KIND, Preloader


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

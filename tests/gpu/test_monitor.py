"""llmhost.gpu.monitor: settle (after an unload, wait until the memory shows as free, within bounds)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from llmhost.gpu.monitor import GpuMemory, NullMonitor, settle
from llmhost.units import GIB
from tests.fakes import FakeGpu


async def test_returns_once_the_expected_memory_is_back() -> None:
    gpu = FakeGpu(total_bytes=16 * GIB, used={"a": 6 * GIB})
    before = gpu.memory()
    asyncio.get_running_loop().call_later(0.3, gpu.used.pop, "a")
    started = time.monotonic()
    freed = await settle(gpu, before, 6 * GIB, time.monotonic() + 10, time.monotonic)
    assert freed == 6 * GIB
    assert 0.3 <= time.monotonic() - started < 3


async def test_most_of_it_is_enough() -> None:
    """90 % of what the load measured counts as back (readings are not exact)."""
    gpu = FakeGpu(total_bytes=16 * GIB)
    before = GpuMemory(16 * GIB, 16 * GIB - 10 * GIB)
    freed = await settle(gpu, before, int(10.5 * GIB), time.monotonic() + 10, time.monotonic)
    assert freed == 10 * GIB


async def test_a_steady_reading_ends_the_wait_early(caplog: pytest.LogCaptureFixture) -> None:
    """An in-process pipeline keeps its CUDA context: not every byte ever comes back."""
    gpu = FakeGpu(total_bytes=16 * GIB, used={"context": GIB // 2})
    before = GpuMemory(16 * GIB, 16 * GIB - 4 * GIB)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="llmhost.gpu"):
        freed = await settle(gpu, before, 4 * GIB, time.monotonic() + 30, time.monotonic)
    assert freed == int(3.5 * GIB)
    assert time.monotonic() - started < 5  # long before the deadline
    assert "still in use after the unload" in caplog.text


async def test_the_deadline_bounds_the_wait() -> None:
    class Drifting(FakeGpu):
        """Readings that change every time (never steady) and never reach the target."""

        def memory(self) -> GpuMemory:
            self.used["noise"] = self.used.get("noise", 0) + 1
            return super().memory()

    gpu = Drifting(total_bytes=16 * GIB, used={"a": 8 * GIB})
    before = gpu.memory()
    started = time.monotonic()
    freed = await settle(gpu, before, 8 * GIB, time.monotonic() + 0.4, time.monotonic)
    assert freed == 0
    assert 0.4 <= time.monotonic() - started < 2


async def test_a_clock_past_the_deadline_reads_once() -> None:
    gpu = FakeGpu(total_bytes=16 * GIB, used={"a": 8 * GIB})
    freed = await settle(gpu, gpu.memory(), 8 * GIB, deadline=100.0, clock=lambda: 200.0)
    assert freed == 0


async def test_nothing_to_wait_for_without_readings() -> None:
    gpu = FakeGpu()
    assert await settle(gpu, None, GIB, time.monotonic() + 10, time.monotonic) is None
    before = GpuMemory(16 * GIB, 8 * GIB)
    assert await settle(NullMonitor("no NVML"), before, GIB, time.monotonic() + 10, time.monotonic) is None

"""GPU memory readings through NVML (pynvml), or a null monitor that says why not.

NVML reads memory the way the driver sees it, across processes: vLLM's engine cores
run in child processes, so torch.cuda in this process would not see their memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from llmhost.units import GIB

log = logging.getLogger("llmhost.gpu")


@dataclass(frozen=True)
class GpuMemory:
    total_bytes: int
    free_bytes: int

    @property
    def used_bytes(self) -> int:
        return self.total_bytes - self.free_bytes


class GpuMonitor(Protocol):
    name: str | None
    unavailable_reason: str | None

    def memory(self) -> GpuMemory | None: ...

    def close(self) -> None: ...


class NullMonitor:
    """No NVML (no GPU, or a WSL2 setup without it): memory is unknown, and we say why."""

    name: str | None = None

    def __init__(self, reason: str) -> None:
        self.unavailable_reason: str | None = reason

    def memory(self) -> GpuMemory | None:
        return None

    def close(self) -> None:
        pass


class NvmlMonitor:
    def __init__(self, index: int = 0) -> None:
        import pynvml

        self._nvml = pynvml
        pynvml.nvmlInit()
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        raw = pynvml.nvmlDeviceGetName(self._handle)
        self.name: str | None = raw.decode() if isinstance(raw, bytes) else str(raw)
        self.unavailable_reason: str | None = None

    def memory(self) -> GpuMemory | None:
        try:
            info = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
        except self._nvml.NVMLError as exc:
            log.warning("NVML memory reading failed: %s", exc)
            return None
        return GpuMemory(total_bytes=int(info.total), free_bytes=int(info.free))

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass


async def settle(
    monitor: GpuMonitor,
    before: GpuMemory | None,
    expected_bytes: int | None,
    deadline: float,
    clock: Callable[[], float],
) -> int | None:
    """Wait until memory given back shows as free (drivers report it late); the bytes freed.

    `before` is the reading taken before the memory was given back, `expected_bytes` how
    much should come back. Polls until 90 % of it is free, `deadline` (on `clock`) passes,
    or the reading has been steady for a while: an in-process pipeline leaves the CUDA
    context behind, so not every byte ever comes back. None without readings.
    """
    if before is None:
        return None
    target = before.free_bytes + int((expected_bytes or 0) * 0.9)
    delay, last, steady = 0.05, -1, 0
    while True:
        now = monitor.memory()
        if now is None:
            return None
        steady = steady + 1 if now.free_bytes == last else 0
        last = now.free_bytes
        if now.free_bytes >= target or clock() >= deadline or steady >= 6:
            if now.free_bytes < target:
                log.info(
                    "%.2f GiB of the model's memory still in use after the unload "
                    "(e.g. an in-process CUDA context)",
                    (target - now.free_bytes) / GIB,
                )
            return max(0, now.free_bytes - before.free_bytes)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


def _visible_index() -> int:
    """NVML numbers GPUs physically; honour the first entry of CUDA_VISIBLE_DEVICES."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(first) if first.isdigit() else 0


def open_monitor() -> GpuMonitor:
    try:
        import pynvml
    except ImportError:
        return NullMonitor("nvidia-ml-py (pynvml) is not installed")
    try:
        monitor = NvmlMonitor(_visible_index())
    except pynvml.NVMLError as exc:
        reason = f"NVML is unavailable ({exc}); GPU memory cannot be watched"
        log.warning("%s: swaps will not wait for freed memory to show up", reason)
        return NullMonitor(reason)
    log.info("GPU: %s, NVML memory watch on", monitor.name)
    return monitor


@contextmanager
def quiet_monitor() -> Iterator[GpuMonitor]:
    """open_monitor for one look by a command (`llmhost check`), closed after: without the
    warning serve logs when NVML is missing, which is not the command's business."""
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        monitor = open_monitor()
    finally:
        log.setLevel(level)
    try:
        yield monitor
    finally:
        monitor.close()

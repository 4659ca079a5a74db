"""GPU memory readings through NVML (pynvml), or a null monitor that says why not.

NVML reads memory the way the driver sees it, across processes: vLLM's engine cores
run in child processes, so torch.cuda in this process would not see their memory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

GIB = 1024**3


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

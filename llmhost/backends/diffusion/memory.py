"""Handing memory back after a pipeline or a failed job: frames, torch's cache, the heap."""

from __future__ import annotations

import ctypes
import sys
import traceback
from typing import Any

from llmhost.units import GIB


def empty_cuda_cache(device: str | None) -> bool:
    """Hand torch's cached GPU blocks back to the driver; False when not on CUDA."""
    torch: Any = sys.modules.get("torch")
    if torch is None or device is None or not device.startswith("cuda"):
        return False
    torch.cuda.empty_cache()
    return True


def clear_frames(exc: BaseException) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc keeps them otherwise; RSS stays high)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl): nothing to trim
        pass


def amount(size: int) -> str:
    return f"{size / GIB:.2f} GiB" if abs(size) >= GIB else f"{size / (1024 * 1024):.1f} MiB"

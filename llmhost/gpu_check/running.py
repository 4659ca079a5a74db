"""Is an llmhost already running on this machine: answering on its port, or holding the GPU.

Asked by scripts/gpu_check.py before it loads anything: two hosts on one card compete for
its memory, and every figure would be wrong.
"""

from __future__ import annotations

import os

from llmhost.cli.ports import answers_as_llmhost, is_llmhost_cmdline, url_host

STOP_SERVICE = "sudo systemctl stop llmhost"


def llmhost_pids(pids: list[int]) -> list[int]:
    """The pids among `pids` that are an llmhost, or one of its engine processes (vLLM's
    engine core is a child of `llmhost serve`); never this process or its ancestors."""
    import psutil

    mine = {os.getpid()}
    try:
        mine |= {p.pid for p in psutil.Process().parents()}
    except psutil.Error:
        pass
    found = []
    for pid in pids:
        if pid in mine:
            continue
        try:
            process = psutil.Process(pid)
            lineage = [process, *process.parents()]
            if any(p.pid not in mine and is_llmhost_cmdline(p.cmdline()) for p in lineage):
                found.append(pid)
        except psutil.Error:  # gone, or another user's process we may not look into
            continue
    return found


def gpu_compute_pids() -> list[int]:
    """The processes NVML lists as computing on any GPU; empty without NVML (no GPU, or
    WSL2, where the driver does not list processes)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError: no driver
        return []
    try:
        pids = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            pids += [int(p.pid) for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)]
        return pids
    except pynvml.NVMLError:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def another_llmhost(host: str, port: int, gpu_pids: list[int] | None = None) -> str | None:
    """Why a GPU check must not start now (another llmhost holds the card), or None.

    `gpu_pids`: the GPU's compute processes (default: NVML's list)."""
    seen = []
    if answers_as_llmhost(host, port):
        seen.append(f"one answers at http://{url_host(host)}:{port}/healthz")
    holding = llmhost_pids(gpu_compute_pids() if gpu_pids is None else gpu_pids)
    if holding:
        seen.append(f"pid {', '.join(map(str, holding))} of one holds the GPU")
    if not seen:
        return None
    return (
        f"another llmhost is running ({'; '.join(seen)}). Two hosts on one card compete for "
        f"its memory and every figure would be wrong. Stop it first: `{STOP_SERVICE}` "
        "(`sudo systemctl start llmhost` afterwards), or stop the `llmhost serve` you started."
    )

"""What every comparison needs: statistics, clean child environments, server processes.

Every process the benchmark measures (a `llmhost serve`, vLLM's OpenAI server, a bare
`AsyncLLM` or a bare diffusers pipeline) is a child of the runner, started in its own
process group, with its output in a log file of the run directory, and stopped (SIGTERM,
then SIGKILL of its group) when its part is done, so no two measurements share state.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# Variables that would change what llmhost or vLLM's server do (llmhost's settings read
# these; vLLM's server turns on auth with VLLM_API_KEY): both sides run without them.
_HOST_VARIABLES = (
    "VLLM_API_KEY",
    "PREWARM_ROUTES",
    "IDLE_SECONDS",
    "START_TIMEOUT_SECONDS",
    "VISION_MODEL_ID",
    "VISION_MODEL_REVISION",
    "VISION_ENABLE_SAFETY_CHECKER",
    "VISION_ENABLE_TILING",
    "VISION_ENABLE_ATTENTION_SLICING",
    "VISION_MAX_EDGE",
)


# ---- statistics --------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Samples:
    """Repeated measurements of one quantity (one value per round, usually)."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float | None) -> None:
        if value is not None and not math.isnan(value):
            self.values.append(float(value))

    def summary(self) -> dict[str, Any]:
        if not self.values:
            return {"median": None, "min": None, "max": None, "n": 0, "values": []}
        return {
            "median": statistics.median(self.values),
            "min": min(self.values),
            "max": max(self.values),
            "n": len(self.values),
            "values": [round(v, 6) for v in self.values],
        }


# ---- processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(offline: bool, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every measured process: the same for both sides."""
    env = {k: v for k, v in os.environ.items() if k not in _HOST_VARIABLES and not k.startswith("LLMHOST_")}
    env["VLLM_NO_USAGE_STATS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    pythonpath = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + pythonpath if pythonpath else "")
    env.update(extra or {})
    return env


class Child:
    """A measured child process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], run_dir: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.log_path = run_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n==== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        self._log.flush()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            list(argv),
            cwd=run_dir,  # no .env of the user's is read by either side
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM, wait (graceful: engines shut down), then SIGKILL the group. Seconds taken."""
        started = time.perf_counter()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()  # whatever is left of the group (engine processes of a killed server)
        return time.perf_counter() - started

    def kill(self) -> None:
        """SIGKILL the group (nothing in it is measured any more), sparing multiprocessing's
        resource trackers: once their clients are gone they unlink the semaphores and
        shared memory those left behind, then exit. vLLM's message queues in /dev/shm are
        removed by vLLM only on a clean exit: the files the group had mapped go too."""
        shm = _shm_files(self.proc.pid) if self.alive() else set()
        trackers: list[psutil.Process] = []
        for proc in _group(self.proc.pid):
            try:
                if any("resource_tracker" in part for part in proc.cmdline()):
                    trackers.append(proc)
                else:
                    proc.kill()
            except psutil.Error:
                pass
        self.proc.wait()
        psutil.wait_procs(trackers, timeout=5)
        try:  # whatever is left in the group: orphans of a parent that had already exited
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for path in shm:
            Path(path).unlink(missing_ok=True)
        if not self._log.closed:
            self._log.close()


def _group(pid: int) -> list[psutil.Process]:
    """`pid` and its descendants (the process group it leads, as started here)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _shm_files(pid: int) -> set[str]:
    """Files under /dev/shm mapped by `pid` or any of its descendants."""
    found: set[str] = set()
    for proc in _group(pid):
        try:
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            where = line.find("/dev/shm/")
            if where >= 0:
                found.add(line[where:].removesuffix(" (deleted)").strip())
    return found


class ChildFailed(RuntimeError):
    pass


def wait_http(
    child: Child, url: str, timeout: float, *, ok: Iterable[int] = (200,), interval: float = 0.02
) -> float:
    """Poll `url` until it answers with an `ok` status; seconds since the child started."""
    codes = set(ok)
    deadline = time.perf_counter() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            if not child.alive():
                raise ChildFailed(f"{child.name} exited ({child.proc.returncode}):\n{child.log_tail()}")
            try:
                if client.get(url).status_code in codes:
                    return time.perf_counter() - child.started
            except httpx.HTTPError:
                pass
            if time.perf_counter() > deadline:
                raise ChildFailed(
                    f"{child.name}: {url} not answering after {timeout:g} s:\n{child.log_tail()}"
                )
            time.sleep(interval)


def run_script(
    name: str, argv: Sequence[str], run_dir: Path, env: Mapping[str, str], timeout: float
) -> dict[str, Any]:
    """Run a measuring script in its own process group until it has written its JSON
    result to the file named by BENCH_RESULT; then kill the group (engines included)."""
    result_path = run_dir / f"{name}.result.json"
    result_path.unlink(missing_ok=True)
    child = Child(name, argv, run_dir, {**env, "BENCH_RESULT": str(result_path)})
    deadline = time.perf_counter() + timeout
    try:
        while not result_path.exists():
            if not child.alive():
                raise ChildFailed(f"{name} failed ({child.proc.returncode}):\n{child.log_tail()}")
            if time.perf_counter() > deadline:
                raise ChildFailed(f"{name} took longer than {timeout:g} s:\n{child.log_tail()}")
            time.sleep(0.1)
    finally:
        child.kill()
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    return result


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

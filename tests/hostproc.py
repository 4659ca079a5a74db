"""`llmhost serve` in a process of its own, and real engine processes, for tests.

A test waits for the log line that says something happened (`HostProcess.wait_for`, a
blocking read of the host's stderr) or for processes to exit (`wait_gone`), not for
wall-clock time. `wait_until` polls a condition for the tests that have nothing better
to wait on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(check: Callable[[], Any], seconds: float) -> bool:
    """Poll `check` until it holds or `seconds` pass (for conditions nothing announces)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return bool(check())


def alive(pid: int) -> bool:
    """Running, and not a zombie (an exited child nobody reaped yet has given its memory back)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def wait_gone(procs: Iterable[psutil.Process], seconds: float = 15) -> list[psutil.Process]:
    """Wait (psutil's own wait on each process) until every one has exited; those still
    running after `seconds`."""
    left = [p for p in procs if alive(p.pid)]
    deadline = time.monotonic() + seconds
    while left and time.monotonic() < deadline:
        _, still = psutil.wait_procs(left, timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        left = [p for p in still if alive(p.pid)]  # a zombie is gone for our purpose
    return left


def is_engine(process: psutil.Process) -> bool:
    # vLLM names its processes VLLM::EngineCore and VLLM::Worker (not the resource
    # tracker, not llmhost's watchdog).
    try:
        return "VLLM::" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def engines_below(pid: int) -> list[psutil.Process]:
    """vLLM's engine processes below process `pid`."""
    return [p for p in psutil.Process(pid).children(recursive=True) if is_engine(p)]


class HostProcess:
    """`llmhost serve --config CONFIG` on a free port; its log lines as they come."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmhost", "serve", "--config", str(config), "--port", str(self.port)],
            env={**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, name="host-log", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def mark(self) -> int:
        """Where the log is now: `wait_for(..., after=mark)` looks only at lines after it."""
        with self._changed:
            return len(self.lines)

    def wait_for(self, text: str, seconds: float = 60, *, after: int = 0) -> str:
        """The first log line (from line `after` on) that contains `text`."""

        def found() -> str | None:
            return next((line for line in self.lines[after:] if text in line), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self._ended, seconds)
            line = found()
        if line is None:
            last = "\n".join(self.lines[-15:])
            raise AssertionError(f"no log line with {text!r} within {seconds:g} s; the last lines:\n{last}")
        return line

    def ready(self, seconds: float = 60) -> None:
        """Wait until it listens (uvicorn says so once the app's start-up is done)."""
        self.wait_for("Uvicorn running on", seconds)

    def engines(self) -> list[psutil.Process]:
        return engines_below(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> HostProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""An engine's processes: adopted as they appear, waited for (then killed) at stop."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time

import psutil

from llmhost.backends.vllm.processes import EngineProcesses


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_children_started_during_the_watch_are_adopted() -> None:
    procs = EngineProcesses()
    procs.start_watching()
    child = multiprocessing.get_context("spawn").Process(target=_sleep, args=(30,))
    child.start()
    try:
        deadline = time.monotonic() + 10
        while child.pid not in procs.pids and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in procs.pids  # known while the "load" is still running
    finally:
        procs.stop_watching()
        killed = procs.wait_gone(timeout=0.5)
    assert killed == [child.pid]  # it outlived the bound: killed, and waited for
    child.join(5)
    assert not child.is_alive()
    assert procs.pids == []


def test_processes_that_existed_before_are_not_the_engines() -> None:
    before = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        procs = EngineProcesses()
        procs.start_watching()
        time.sleep(0.3)
        procs.stop_watching()
        assert before.pid not in procs.pids
    finally:
        before.kill()
        before.wait()


def test_wait_gone_returns_at_once_for_exited_processes() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    procs = EngineProcesses()
    procs.add([proc.pid])
    proc.wait()
    started = time.monotonic()
    assert procs.wait_gone(timeout=10) == []
    assert time.monotonic() - started < 2
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE

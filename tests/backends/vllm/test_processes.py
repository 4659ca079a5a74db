"""An engine's processes: adopted as they appear, waited for (then killed) at stop."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import time
from collections.abc import Iterable

import psutil

from llmhost.backends.vllm.processes import EngineProcesses
from llmhost.backends.vllm.reaper import Reaper


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


class RecordingReaper(Reaper):
    """The watchdog as EngineProcesses uses it, recording instead of starting one: the
    processes it would kill if the host died, with a condition to wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: set[int] = set()
        self.changed = threading.Condition()

    def watch(self, pids: Iterable[int]) -> None:
        with self.changed:
            self.watched |= set(pids)
            self.changed.notify_all()

    def forget(self, pids: Iterable[int]) -> None:
        with self.changed:
            self.watched -= set(pids)
            self.changed.notify_all()


def test_children_started_during_the_watch_are_adopted() -> None:
    reaper = RecordingReaper()
    procs = EngineProcesses(reaper)
    procs.start_watching()
    child = multiprocessing.get_context("spawn").Process(target=_sleep, args=(30,))
    child.start()
    try:
        with reaper.changed:  # handed to the watchdog while the "load" is still running
            assert reaper.changed.wait_for(lambda: child.pid in reaper.watched, 30)
    finally:
        procs.stop_watching()
        killed = procs.wait_gone(timeout=0.5)
    assert killed == [child.pid]  # it outlived the bound: killed, and waited for
    child.join(5)
    assert not child.is_alive()
    assert reaper.watched == set()  # gone: the watchdog lets it go


def test_processes_that_existed_before_are_not_the_engines() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    before = subprocess.Popen(sleeper)
    reaper = RecordingReaper()
    procs = EngineProcesses(reaper)
    after = subprocess.Popen(sleeper)  # started once the engine's start began: the engine's
    try:
        procs.start_watching()
        procs.stop_watching()  # its last look sees every child there is by now
        assert reaper.watched == {after.pid}
    finally:
        for proc in (before, after):
            proc.kill()
            proc.wait()


def test_wait_gone_returns_at_once_for_exited_processes() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    procs = EngineProcesses()
    procs.add([proc.pid])
    proc.wait()
    started = time.monotonic()
    assert procs.wait_gone(timeout=10) == []
    assert time.monotonic() - started < 2
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE

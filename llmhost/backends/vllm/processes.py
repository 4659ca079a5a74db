"""The processes of one vLLM engine: known from the moment they exist, gone when we say so.

vLLM starts its engine core (and, on GPUs, its workers) as child processes while
`AsyncLLM.from_engine_args` runs, which can take minutes. Two things follow:

* A host killed during that time (OOM killer, `kill -9`) must not leave them holding
  GPU memory: new children are handed to the watchdog (llmhost.backends.vllm.reaper) as they appear,
  not only once the load has finished.
* `AsyncLLM.shutdown()` SIGTERMs the engine, waits, then SIGKILLs *without waiting for
  the exit*: the memory may come back after it returns. `stop` waits for every process
  of the engine to be gone (bounded, then kills) before the manager reads NVML.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import psutil

from llmhost.backends.vllm.reaper import PROCESS_REAPER, Reaper

log = logging.getLogger("llmhost.vllm")

POLL_SECONDS = 0.1


class EngineProcesses:
    """Children of this process that belong to one engine, watched by the reaper."""

    def __init__(self, reaper: Reaper = PROCESS_REAPER) -> None:
        self._reaper = reaper
        self._me = psutil.Process()
        self._before = {p.pid for p in self._children()}
        self._procs: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _children(self) -> list[psutil.Process]:
        try:
            children: list[psutil.Process] = self._me.children(recursive=False)
        except psutil.Error:
            return []
        return children

    def start_watching(self) -> None:
        """Poll for the engine's processes in a thread while the engine is being created."""
        self._thread = threading.Thread(target=self._poll, name="llmhost-engine-procs", daemon=True)
        self._thread.start()

    def stop_watching(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._adopt_new()  # one last look: a process started just before the load returned

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._adopt_new()

    def _adopt_new(self) -> None:
        fresh = [p for p in self._children() if p.pid not in self._before and p.pid not in self._procs]
        self.add(p for p in fresh if _is_engine_process(p))

    def add(self, procs: Iterable[psutil.Process | int]) -> None:
        new: list[int] = []
        for item in procs:
            try:
                proc = item if isinstance(item, psutil.Process) else psutil.Process(item)
            except psutil.Error:
                continue
            if proc.pid not in self._procs:
                self._procs[proc.pid] = proc
                new.append(proc.pid)
        if new:
            self._reaper.watch(new)
            log.debug("engine process(es) %s started; the watchdog kills them if the host dies", new)

    def kill(self) -> None:
        """SIGKILL every engine process adopted so far (a start that must be abandoned)."""
        self._adopt_new()
        for proc in list(self._procs.values()):
            try:
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()
            except psutil.Error:
                pass

    def rss_bytes(self) -> int | None:
        """Resident memory of the engine's processes and their workers (None: none known):
        what a level-1 sleep moves the weights into."""
        total, seen = 0, False
        for proc in list(self._procs.values()):
            try:
                for member in (proc, *proc.children(recursive=True)):
                    total += member.memory_info().rss
                    seen = True
            except psutil.Error:
                continue
        return total if seen else None

    def wait_gone(self, timeout: float) -> list[int]:
        """Wait until every process of the engine has exited; kill what outlives `timeout`.

        Returns the PIDs that had to be killed. Their children (GPU workers) go with them.
        """
        alive = [p for p in self._procs.values() if _running(p)]
        descendants: list[psutil.Process] = []
        for proc in alive:
            try:
                descendants += proc.children(recursive=True)
            except psutil.Error:
                pass
        left = _wait_exited(alive + descendants, timeout)
        killed = []
        for proc in left:
            try:
                proc.kill()
                killed.append(proc.pid)
            except psutil.Error:
                pass
        if left:
            _wait_exited(left, 5)
            log.warning("engine process(es) %s did not exit within %g s: killed", killed, timeout)
        self._reaper.forget(self._procs)
        self._procs.clear()
        return killed


def _wait_exited(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Poll until each process has exited; those still running at the deadline.

    An exited child that nobody reaped yet (a zombie) has already given its memory back.
    We do not reap it ourselves: multiprocessing, which started it, does that, and would
    report a process reaped behind its back as alive forever.
    """
    deadline = time.monotonic() + timeout
    left = [p for p in procs if _running(p)]
    while left and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS / 2)
        left = [p for p in left if _running(p)]
    return left


def _running(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _is_engine_process(proc: psutil.Process) -> bool:
    """multiprocessing's resource tracker is shared by the whole host: not the engine's."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False  # already gone
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return False
    return "resource_tracker" not in cmdline and "llmhost.backends.vllm.reaper" not in cmdline

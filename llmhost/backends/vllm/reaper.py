"""A watchdog process that kills engine processes if the host dies without shutting down.

vLLM's engine core runs in a child process and does not notice when an in-process
host is SIGKILLed (measured: still running 30 s later), so an OOM kill or `kill -9`
would leave several GB of VRAM held. The watchdog is a tiny separate process that
reads engine PIDs from a pipe; when the pipe closes (the host is gone, however it
died) it kills what is still registered, with their children.

Usage from the host: `Reaper.watch(pids)` after an engine starts, `forget(pids)` after
it stopped cleanly. The watchdog is per host process by nature: `PROCESS_REAPER` is the
one instance, its process started on first use and shared by every backend.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterable

log = logging.getLogger("llmhost.reaper")


class Reaper:
    """The host's handle on its watchdog process, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchdog: subprocess.Popen[str] | None = None

    def watch(self, pids: Iterable[int]) -> None:
        for pid in pids:
            self._send(f"+{pid}")

    def forget(self, pids: Iterable[int]) -> None:
        for pid in pids:
            self._send(f"-{pid}")

    def _send(self, line: str) -> None:
        with self._lock:
            if self._watchdog is None or self._watchdog.poll() is not None:
                # Its own session: a Ctrl-C in the host's terminal must not reach it first.
                self._watchdog = subprocess.Popen(
                    [sys.executable, "-m", "llmhost.backends.vllm.reaper", str(os.getpid())],
                    stdin=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            assert self._watchdog.stdin is not None
            try:
                self._watchdog.stdin.write(line + "\n")
                self._watchdog.stdin.flush()
            except OSError as exc:
                log.warning("engine watchdog unreachable (%s); engines may outlive a killed host", exc)


#: The one watchdog of this host process: every engine's processes are registered with
#: it, since it has to outlive them all and is keyed on this process's exit.
PROCESS_REAPER = Reaper()


def _run(host_pid: int) -> None:
    import psutil

    watched: dict[int, psutil.Process] = {}
    for line in sys.stdin:
        sign, pid = line[:1], int(line[1:])
        if sign == "+":
            try:
                watched[pid] = psutil.Process(pid)  # remembers create time: no PID reuse mix-ups
            except psutil.Error:
                pass
        else:
            watched.pop(pid, None)
    # The pipe closed: the host exited. Whatever is still registered is orphaned.
    victims: list[psutil.Process] = []
    for proc in watched.values():
        try:
            if proc.is_running():
                victims += [*proc.children(recursive=True), proc]
        except psutil.Error:
            pass
    for proc in victims:
        try:
            proc.kill()
        except psutil.Error:
            pass
    if victims:
        print(
            f"llmhost watchdog: host {host_pid} is gone; killed {len(victims)} engine process(es)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    _run(int(sys.argv[1]))

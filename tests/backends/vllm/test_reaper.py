"""The reaper: a watchdog process that kills the registered engine processes (with their
children) once the host's end of its pipe closes, however the host died.

Real processes throughout: a sleeping child stands for an engine core, and closing the
watchdog's stdin stands for the host's death.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from llmhost.backends.vllm.reaper import Reaper

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
# A child with a child of its own (vLLM's engine core has workers): prints the grandchild's PID.
PARENT = [
    sys.executable,
    "-c",
    "import subprocess, sys, time\n"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "print(p.pid, flush=True)\n"
    "time.sleep(120)\n",
]


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start processes for a test; whatever is still running at its end is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(argv: list[str], **kwargs: object) -> subprocess.Popen[str]:
        proc: subprocess.Popen[str] = subprocess.Popen(argv, text=True, **kwargs)  # type: ignore[call-overload]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def gone(pid: int, timeout: float = 10) -> bool:
    """Whether `pid` exits within `timeout` (a zombie awaiting its parent counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def watchdog(spawn: Callable[..., subprocess.Popen[str]]) -> subprocess.Popen[str]:
    return spawn(
        [sys.executable, "-m", "llmhost.backends.vllm.reaper", str(os.getpid())],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_when_the_pipe_closes_the_registered_child_is_killed(
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    child = spawn(SLEEPER)
    dog = watchdog(spawn)
    assert dog.stdin is not None
    dog.stdin.write(f"+{child.pid}\n")
    dog.stdin.flush()
    assert child.poll() is None and dog.poll() is None  # both live while the host does
    dog.stdin.close()  # the host is gone: only now does the watchdog act
    assert dog.wait(30) == 0
    assert dog.stderr is not None
    err = dog.stderr.read()
    assert child.wait(10) == -9  # SIGKILL
    assert f"host {os.getpid()} is gone; killed 1 engine process(es)" in err


def test_the_childs_own_children_are_killed_too(spawn: Callable[..., subprocess.Popen[str]]) -> None:
    child = spawn(PARENT, stdout=subprocess.PIPE)
    assert child.stdout is not None
    grandchild = int(child.stdout.readline())
    dog = watchdog(spawn)
    _, err = dog.communicate(f"+{child.pid}\n", timeout=30)
    assert child.wait(10) == -9
    assert gone(grandchild)
    assert "killed 2 engine process(es)" in err


def test_forgotten_and_unknown_pids_are_left_alone(spawn: Callable[..., subprocess.Popen[str]]) -> None:
    kept = spawn(SLEEPER)
    forgotten = spawn(SLEEPER)
    dog = watchdog(spawn)
    # A PID that is no process (an engine that already exited) is skipped.
    _, err = dog.communicate(f"+{kept.pid}\n+{forgotten.pid}\n+{2**22 + 17}\n-{forgotten.pid}\n", timeout=30)
    assert kept.wait(10) == -9
    # The watchdog has exited (communicate waited for it) having killed one process, `kept`:
    # the forgotten one was stopped cleanly, not the watchdog's any more.
    assert "killed 1 engine process(es)" in err
    assert forgotten.poll() is None


def test_the_reaper_starts_its_watchdog_on_first_use(spawn: Callable[..., subprocess.Popen[str]]) -> None:
    reaper = Reaper()
    child = spawn(SLEEPER)
    reaper.watch([child.pid])
    dog = reaper._watchdog
    assert dog is not None and dog.poll() is None
    try:
        reaper.watch([])  # nothing to send: the same watchdog
        assert reaper._watchdog is dog
        assert child.poll() is None
    finally:
        assert dog.stdin is not None
        dog.stdin.close()  # as when the host process dies
        dog.wait(30)
    assert child.wait(10) == -9


def test_a_dead_watchdog_is_replaced(spawn: Callable[..., subprocess.Popen[str]]) -> None:
    reaper = Reaper()
    first_child, second_child = spawn(SLEEPER), spawn(SLEEPER)
    reaper.watch([first_child.pid])
    first = reaper._watchdog
    assert first is not None
    first.kill()
    first.wait(10)
    reaper.watch([second_child.pid])
    second = reaper._watchdog
    assert second is not None and second is not first and second.poll() is None
    assert second.stdin is not None
    second.stdin.close()
    second.wait(30)
    assert second_child.wait(10) == -9
    assert first_child.poll() is None  # its watchdog was killed before the host "died"
    if first.stdin is not None:
        first.stdin.close()

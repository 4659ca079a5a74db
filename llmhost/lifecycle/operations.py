"""The slow GPU work: start an engine, stop one, put it to sleep or wake it, wait for its
memory to come back. Each function does one slow step and returns an outcome; none touches
a slot. The runner (llmhost.lifecycle.runner) runs one at a time as the GPU operation, and
the scheduler's pass applies its outcome to the slot, on the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from llmhost.backends.base import (
    ABANDON_TIMEOUT_SECONDS,
    Backend,
    BackendFactory,
    LoadFailed,
    Probe,
    Sleeper,
    describe,
)
from llmhost.config import HostConfig, RouteConfig
from llmhost.gpu.monitor import GpuMemory, GpuMonitor, settle

log = logging.getLogger("llmhost.lifecycle")

# A wake (with its probe) slower than this failed: vLLM's wakes take 0.3-3 s for models up
# to 7B, a level-2 wake rereads the weights; one this slow is stuck, or no faster than a
# cold start. The scheduler enforces it on its clock by resolving the operation's abort.
WAKE_TIMEOUT_SECONDS = 60.0
# A sleep slower than this failed (vLLM's take a second or two: the weights are copied to
# host RAM at level 1); the engine is then shut down. Enforced like the wake's bound.
SLEEP_TIMEOUT_SECONDS = 60.0
# The probe after a cold load: a few tokens, so far more than enough.
PROBE_TIMEOUT_SECONDS = 60.0

Clock = Callable[[], float]
T = TypeVar("T")


@dataclass(frozen=True)
class Loaded:
    """The engine started and serves."""

    backend: Backend
    elapsed: float  # seconds since the load began: the cold start
    measured_bytes: int | None  # the drop in free memory across the load, when measurable
    probe: Probe | None = None  # recorded for standby: every wake must reproduce it
    standby_problem: str | None = None  # why this engine cannot sleep (standby requested)


@dataclass(frozen=True)
class Failed:
    """The engine did not start; its backend is already stopped."""

    reason: str


@dataclass(frozen=True)
class Abandoned:
    """The load was given up (a stop, a removed route, the start timeout): the model is
    already marked failed. Its backend still has to be stopped and its memory to come
    back: `reclaim` does that, as the next GPU operation."""

    reason: str
    route: RouteConfig
    backend: Backend | None = None  # None: abandoned before anything started
    start: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class Stopped:
    """The engine was shut down (its memory may not show as free yet)."""


@dataclass(frozen=True)
class Reclaimed:
    """The memory given back shows as free: how much came back (None: no readings)."""

    freed_bytes: int | None


@dataclass(frozen=True)
class Slept:
    """The engine sleeps: the GPU memory it gave back, the host RAM it holds (None: unknown)."""

    freed_bytes: int | None
    ram_bytes: int | None
    elapsed: float


@dataclass(frozen=True)
class Woke:
    """The engine is awake and its probe matched the one recorded at its cold load."""

    elapsed: float


@dataclass(frozen=True)
class WakeFailed:
    """The wake raised, was too slow, or its probe differed: the engine must not serve."""

    reason: str


LoadOutcome = Loaded | Failed | Abandoned


async def load(
    factory: BackendFactory,
    route: RouteConfig,
    host: HostConfig,
    *,
    abort: asyncio.Future[str],
    monitor: GpuMonitor,
    before: GpuMemory | None,
    started: float,
    clock: Clock,
) -> LoadOutcome:
    """Start `route`'s engine until it serves or `abort` resolves (with the reason: a
    stop, a removed route, the start timeout). `before` is the free-memory reading taken
    when the load began, `started` its time on `clock`."""
    if abort.done():  # abandoned before this operation ran: start nothing
        return Abandoned(abort.result(), route)
    backend = factory(route, host)
    start = asyncio.create_task(backend.start())
    waiters: set[asyncio.Future[Any]] = {start, abort}
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    if abort.done():
        return Abandoned(abort.result(), route, backend, start)
    error = start.exception()
    if error is not None:
        await stop(backend, route)
        return Failed(describe_failure(error))
    try:
        after = monitor.memory()
        measured = (
            max(0, before.free_bytes - after.free_bytes) if before is not None and after is not None else None
        )
        # The probe after the load (standby) takes seconds: the abort is honoured there too.
        probe, problem = await until_aborted(_standby_ready(backend, route), abort)
    except Aborted as stop_:
        return Abandoned(stop_.reason, route, backend, start)
    except Exception as exc:  # the engine started: never leave it without an owner
        await stop(backend, route)
        return Failed(f"after the engine started: {describe_failure(exc)}")
    return Loaded(backend, clock() - started, measured, probe, problem)


async def _standby_ready(backend: Backend, route: RouteConfig) -> tuple[Probe | None, str | None]:
    """For a route with standby on: the probe every wake must reproduce, or why it cannot sleep."""
    if route.standby == "off":
        return None, None
    if not isinstance(backend, Sleeper):
        return None, f"the {route.kind} backend has no sleep mode"
    problem = backend.standby_problem()
    if problem is not None:
        return None, problem
    try:
        return await asyncio.wait_for(backend.probe(), PROBE_TIMEOUT_SECONDS), None
    except Exception as exc:  # the model serves; it just never sleeps
        return None, f"the probe after the cold load failed: {describe_failure(exc)}"


async def reclaim(
    abandoned: Abandoned,
    *,
    monitor: GpuMonitor,
    before: GpuMemory | None,
    settle_seconds: float,
    clock: Clock,
) -> Reclaimed:
    """Finish an abandoned load: it is never forgotten. Stopping the backend interrupts
    its start (vLLM: its processes are killed); the start then returns, and its memory
    is back before anything else loads."""
    start = abandoned.start
    if abandoned.backend is None:
        return Reclaimed(None)
    await stop(abandoned.backend, abandoned.route)
    if start is not None:
        await asyncio.wait({start}, timeout=ABANDON_TIMEOUT_SECONDS)
        if start.done() and not start.cancelled():
            start.exception()  # retrieved: the failure is already reported
    return await memory_back(
        monitor=monitor, before=before, expected_bytes=None, settle_seconds=settle_seconds, clock=clock
    )


async def unload(backend: Backend | None, route: RouteConfig) -> Stopped:
    """Shut a ready model's engine down."""
    if backend is not None:
        await stop(backend, route)
    return Stopped()


async def sleep(
    backend: Sleeper,
    level: int,
    *,
    abort: asyncio.Future[str],
    monitor: GpuMonitor,
    expected_bytes: int | None,
    settle_seconds: float,
    clock: Clock,
) -> Slept | Failed:
    """Put a drained engine to sleep and wait until the memory it gave back shows as free.
    An `abort` (its time bound) fails the sleep: the engine is then shut down."""
    started = clock()
    before = monitor.memory()
    try:
        ram = await until_aborted(backend.sleep(level), abort)
    except Aborted as stop:
        return Failed(f"the level-{level} sleep {stop.reason}")
    except Exception as exc:
        return Failed(f"the level-{level} sleep failed: {describe_failure(exc)}")
    freed = await settle(monitor, before, expected_bytes, clock() + settle_seconds, clock)
    return Slept(freed, ram, clock() - started)


async def wake(
    backend: Sleeper, level: int, expected: Probe, *, abort: asyncio.Future[str], clock: Clock
) -> Woke | WakeFailed:
    """Wake an asleep engine and run the probe: only a wake whose probe reproduces the
    one recorded at the cold load is a wake (vLLM's known failures: a level-2 wake into
    gibberish, a wake that fails or wedges, corrupted weights after a wake). An `abort`
    (its time bound) fails the wake."""
    started = clock()
    try:
        got = await until_aborted(_wake_and_probe(backend, level), abort)
    except Aborted as stop:
        return WakeFailed(f"the wake and its probe {stop.reason}")
    except Exception as exc:
        return WakeFailed(f"the wake failed: {describe_failure(exc)}")
    if got.token_ids != expected.token_ids:
        return WakeFailed(
            f"the probe after the wake differs from the one after the cold load: "
            f"{got.text!r} instead of {expected.text!r}"
        )
    return Woke(clock() - started)


async def _wake_and_probe(backend: Sleeper, level: int) -> Probe:
    await backend.wake(level)
    return await backend.probe()


async def memory_back(
    *,
    monitor: GpuMonitor,
    before: GpuMemory | None,
    expected_bytes: int | None,
    settle_seconds: float,
    clock: Clock,
) -> Reclaimed:
    """Wait (at most `settle_seconds`) until the memory given back shows as free."""
    freed = await settle(monitor, before, expected_bytes, clock() + settle_seconds, clock)
    return Reclaimed(freed)


class Aborted(Exception):
    """The operation's abort resolved while it waited (its bound passed, or a stop)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def until_aborted(work: Coroutine[Any, Any, T], abort: asyncio.Future[str]) -> T:
    """`work`'s result, unless `abort` resolves first: then `work` is cancelled and
    Aborted raised with the abort's reason."""
    task = asyncio.ensure_future(work)
    waiters: set[asyncio.Future[Any]] = {task, abort}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: the abort is what is reported
    raise Aborted(abort.result())


async def stop(backend: Backend, route: RouteConfig) -> None:
    """Stop a backend; one that raises while stopping is treated as stopped."""
    try:
        await backend.stop()
    except Exception as exc:
        log.warning("stopping %s raised %s; treating it as stopped", route.primary_id, describe_failure(exc))


def describe_failure(error: BaseException) -> str:
    if isinstance(error, LoadFailed):
        return str(error)  # already the one line users need (e.g. vLLM's root cause)
    return describe(error)

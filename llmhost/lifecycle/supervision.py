"""When the scheduler task ends by an error that escaped its pass: no model can change
state any more, so every waiter is answered at once, and at close the engines are
stopped directly, without the scheduler (the host then exits for systemd to restart it).
Used by the manager (llmhost.lifecycle.manager)."""

from __future__ import annotations

import asyncio

from llmhost.backends.base import ABANDON_TIMEOUT_SECONDS, Backend
from llmhost.config import RouteConfig
from llmhost.errors import ModelUnavailable
from llmhost.lifecycle import operations
from llmhost.lifecycle.scheduler import Scheduler
from llmhost.lifecycle.slot import Slot


def why_it_ended(task: asyncio.Task[None]) -> tuple[str, BaseException | None]:
    """The failure the host reports for a scheduler task that ended, and its error."""
    error = None if task.cancelled() else task.exception()
    cause = f"{type(error).__name__}: {error}" if error is not None else "it was cancelled"
    return f"the model scheduler stopped ({cause})", error


def unavailable(failure: str) -> ModelUnavailable:
    """The 503 every request gets once the scheduler is gone."""
    return ModelUnavailable(f"The host cannot serve models: {failure}; it is restarting.", retry_after=30)


def refuse_all(slots: dict[str, Slot], failure: str) -> None:
    """Answer every waiting request and every unload waiter: nothing can finish now."""
    for slot in slots.values():
        slot.count_refused("load_failed", len(slot.waiting))
        slot.reject_waiting(unavailable(failure))
        for waiter in slot.unload_waiters:  # an unload cannot finish either
            if not waiter.done():
                waiter.set_exception(unavailable(failure))


async def stop_engines(slots: dict[str, Slot], scheduler: Scheduler) -> None:
    """The scheduler is gone: stop every engine it knew of directly, one after another
    (best effort; the watchdog kills what is left when the process exits)."""
    engines: list[tuple[RouteConfig, Backend]] = [
        (s.route, s.backend) for s in slots.values() if s.backend is not None
    ]
    engines += [(o.route, o.backend) for o in scheduler.orphans if o.backend is not None]
    op = scheduler.op
    if op is not None:  # a load gives up and returns the engine it began
        op.stop("the host is shutting down")
        await asyncio.wait({op.task}, timeout=ABANDON_TIMEOUT_SECONDS)
        if op.task.done() and not op.task.cancelled() and op.task.exception() is None:
            backend = getattr(op.task.result(), "backend", None)
            if backend is not None:
                engines.append((backend.route, backend))
    for route, backend in engines:
        await operations.stop(backend, route)

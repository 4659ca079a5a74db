"""The one GPU operation at a time: start its slow work, hand its outcome back to the pass.

Every state change is the scheduler's (llmhost.lifecycle.scheduler): the runner starts the
slow work (llmhost.lifecycle.operations) as a task, pokes the scheduler when it is done,
and the next pass calls `finish`, which applies the outcome with the function the
transition gave (llmhost.lifecycle.loading, unloading, sleeping). A transition of two
steps (stop the engine, then wait for its memory) starts its second in the apply of its
first, in the same pass, so nothing else gets in between.

Every operation has an *abort* future. The scheduler resolves it when the operation's
time bound passes on its clock (a load's start timeout, a sleep's or a wake's bound) or
when a load is abandoned (a stop, a reload, an unload request); the slow work watches it
at every await and returns early. An outcome that arrives for a slot that has moved on
(the scheduler contained an error in its handling meanwhile) is never dropped: an engine
it carries is queued for shutdown (`orphans`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from llmhost.lifecycle.clock import Clock
from llmhost.lifecycle.operations import Abandoned, Loaded
from llmhost.lifecycle.slot import Slot

# The slow work of an operation, given its abort future.
Work = Callable[[asyncio.Future[str]], Coroutine[Any, Any, Any]]


@dataclass(eq=False)
class Operation:
    """The GPU operation in progress: its task, what to do with its outcome, its abort."""

    slot: Slot | None  # None: shutting down an engine no model owns any more (orphans)
    kind: str  # load, reclaim, unload, memory, sleep, wake, orphan
    task: asyncio.Task[Any]
    apply: Callable[[Any], None]
    abort: asyncio.Future[str]
    epoch: int  # the slot's epoch when it began: a different one means the slot moved on
    deadline: float | None = None  # on the scheduler's clock; then `abort` with `overdue`
    overdue: str = ""

    def stop(self, reason: str) -> None:
        if not self.abort.done():
            self.abort.set_result(reason)


class Runner:
    def __init__(self, clock: Clock, poke: Callable[[], None]) -> None:
        self._clock = clock
        self._poke = poke
        self.op: Operation | None = None  # the GPU operation in progress
        # Engines no model owns any more, shut down as the next GPU operations: a load's
        # outcome for a slot that moved on, or the engine of a model whose handling raised.
        self.orphans: list[Abandoned] = []

    def begin(
        self,
        slot: Slot | None,
        kind: str,
        work: Work,
        apply: Callable[[Any], None],
        *,
        bound: float | None = None,
        overdue: str = "",
    ) -> None:
        """Start `work` as the GPU operation; the pass applies its outcome with `apply`.
        `bound`: seconds on the scheduler's clock after which its abort resolves with
        `overdue` as the reason."""
        assert self.op is None, "one GPU operation at a time"
        loop = asyncio.get_running_loop()
        abort: asyncio.Future[str] = loop.create_future()
        name = f"gpu-op-{kind}-{slot.route.name if slot is not None else 'orphan'}"
        task = asyncio.create_task(work(abort), name=name)
        deadline = None if bound is None else self._clock() + bound
        epoch = slot.epoch if slot is not None else 0
        self.op = Operation(slot, kind, task, apply, abort, epoch, deadline, overdue)
        task.add_done_callback(self._done)

    def _done(self, _: asyncio.Task[Any]) -> None:
        self._poke()

    def finish(self) -> None:
        """Apply the finished operation's outcome (called by the pass once its task is done).
        An error in the slow work itself is raised here, for the scheduler to contain."""
        op = self.op
        assert op is not None and op.task.done()
        self.op = None
        if op.task.cancelled():
            raise RuntimeError(f"the {op.kind} operation was cancelled")
        outcome = op.task.result()
        if op.slot is not None and op.slot.epoch != op.epoch:
            self.adopt(outcome)  # the slot moved on: reclaim what the outcome holds
            return
        op.apply(outcome)

    def adopt(self, outcome: Any) -> None:
        """Queue for shutdown the engine an outcome holds that no model will own."""
        if isinstance(outcome, Loaded):
            self.orphans.append(Abandoned("its model moved on", outcome.backend.route, outcome.backend))
        elif isinstance(outcome, Abandoned) and outcome.backend is not None:
            self.orphans.append(outcome)

    def busy_with(self, slot: Slot) -> bool:
        """Whether the GPU operation in progress is this model's."""
        return self.op is not None and self.op.slot is slot

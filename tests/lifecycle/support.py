"""What the lifecycle tests share: a manager on a hand-moved clock, a bound on every wait,
and a fake backend whose loads wait for the test to let them finish.

No test here sleeps to let something happen: it waits for the pass where it happens
(`wait_state` / `wait_until`, on the scheduler's `next_pass`), or moves the clock past a bound. The bound
of `within` only turns a bug that would hang into a failure; it never decides a result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from llmhost.backends.base import Probe
from llmhost.config import Catalog, HostConfig, RouteConfig
from llmhost.gpu.monitor import GpuMonitor, NullMonitor
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.scheduler import Scheduler
from llmhost.lifecycle.slot import Slot, Ticket
from llmhost.lifecycle.standby import StandbyPlatform
from llmhost.lifecycle.state import ModelState
from tests.apphelp import until, until_state
from tests.fakes import FakeBackend, Recorder, catalog, no_sleep_mode
from tests.lifecycle.clock import ManualClock

T = TypeVar("T")

# Seconds a test waits for something that must happen, before it fails instead of hanging.
BOUND = 30.0


async def within(work: Awaitable[T], seconds: float = BOUND) -> T:
    return await asyncio.wait_for(work, seconds)


async def wait_state(manager: ModelManager, route: str, *states: ModelState) -> ModelState:
    return await within(until_state(manager, route, *states))


async def wait_until(manager: ModelManager, check: Callable[[], bool]) -> None:
    await within(until(manager, check))


async def settled(manager: ModelManager) -> None:
    """Until the scheduler has handled every event so far and runs no GPU operation:
    what has not happened then does not happen without a new event or a timer."""
    await within(manager.scheduler.settled())


def start_manager(
    rec: Recorder,
    *,
    policy: str = "exclusive",
    routes: tuple[str, ...] = ("a", "b"),
    clock: ManualClock | None = None,
    every_route: dict[str, object] | None = None,
    standby_query: Callable[[], str | None] = no_sleep_mode,
    standby_after: Callable[[], Awaitable[Any]] | None = None,
    preflight: Callable[[RouteConfig], str | None] | None = None,
    cat: Catalog | None = None,
    **host: Any,
) -> tuple[ModelManager, ManualClock]:
    """A started manager over `rec`'s fake backends, on a clock the test moves. Standby is
    unavailable unless `standby_query` says otherwise (vLLM's answer on this CPU machine)."""
    clock = clock or ManualClock()
    gpu: GpuMonitor = rec.gpu if rec.gpu is not None else NullMonitor("test")
    manager = ModelManager(
        cat or catalog(policy, routes, every_route=every_route, **host),
        rec.factory,
        gpu,
        clock=clock,
        standby_query=standby_query,
        standby_after=standby_after,
        preflight=preflight,
    )
    manager.start()
    return manager, clock


async def use(manager: ModelManager, route: str) -> None:
    """One request: take the lease, do its work (one turn of the event loop: a yield that
    lets other requests interleave, not a wait for anything), release it."""
    async with manager.lease(route):
        await asyncio.sleep(0)


class GatedRecorder(Recorder):
    """A Recorder whose loads, probes, sleeps and wakes wait at a gate (`gate("load a")`,
    `gate("probe a")`, `gate("sleep a")`, `gate("wake a")`) until the test opens it: work
    in progress for as long as the test needs, without a timing window."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gates: dict[str, asyncio.Event] = {}

        self._reached: dict[str, asyncio.Event] = {}

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    def reached(self, name: str) -> asyncio.Event:
        """Set once a backend's work waits at the gate `name`: the work has begun."""
        return self._reached.setdefault(name, asyncio.Event())

    def factory(self, route: RouteConfig, host: HostConfig) -> FakeBackend:
        return _GatedBackend(route, self)


class _GatedBackend(FakeBackend):
    rec: GatedRecorder

    async def _pass_gate(self, name: str) -> None:
        gate = self.rec.gates.get(name)
        if gate is None:
            return
        self.rec.reached(name).set()
        # Like a real engine, a stop ends the wait (the work is abandoned).
        waits = {asyncio.ensure_future(gate.wait()), asyncio.ensure_future(self._stopped.wait())}
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
        if self._stopped.is_set():
            raise RuntimeError(f"{name} abandoned")

    async def start(self) -> None:
        await self._pass_gate(f"load {self.route.name}")
        await super().start()

    async def wake(self, level: int) -> None:
        await self._pass_gate(f"wake {self.route.name}")
        await super().wake(level)

    async def sleep(self, level: int) -> int | None:
        await self._pass_gate(f"sleep {self.route.name}")
        return await super().sleep(level)

    async def probe(self) -> Probe:
        await self._pass_gate(f"probe {self.route.name}")
        return await super().probe()


def bare_scheduler(
    rec: Recorder, routes: tuple[str, ...] = ("a",), **host: Any
) -> tuple[Scheduler, ManualClock]:
    """A scheduler over `rec`'s fake backends with no run loop: the test runs each pass
    (`Scheduler._schedule`) itself, so every state change shows at the pass that makes it."""
    cat = catalog("exclusive", routes, **host)
    clock = ManualClock()
    slots = {name: Slot(route) for name, route in cat.routes.items()}
    scheduler = Scheduler(
        cat.host,
        slots,
        rec.factory,
        NullMonitor("test"),
        clock=clock,
        preflight=None,
        route_changed=lambda: None,
    )
    scheduler.ctx.standby = StandbyPlatform(known=True)
    return scheduler, clock


def state_of(slot: Slot) -> ModelState:
    return slot.state  # read afresh: each pass may have changed it


def queue_ticket(slot: Slot, clock: ManualClock) -> Ticket:
    ticket = Ticket(clock(), asyncio.get_running_loop().create_future())
    slot.waiting.append(ticket)
    return ticket


async def op_done(scheduler: Scheduler) -> None:
    """Let the GPU operation in progress finish (the pass after it applies its outcome)."""
    op = scheduler.op
    assert op is not None
    await within(asyncio.wait({op.task}))

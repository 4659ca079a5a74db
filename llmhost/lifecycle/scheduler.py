"""The scheduling pass: the one owner of every model's state.

`run` wakes on any event (a new ticket, a released lease, a finished GPU operation, a
timer) and runs `_schedule`, a synchronous pass over all models, so nothing changes
between a decision and its action. The pass grants leases, marks models for eviction
(idle, making room, reloaded, shutting down) and decides the next GPU operation; its
`Transitions` (llmhost.lifecycle.transitions) start that operation and, when its slow
work (llmhost.lifecycle.operations) returns an outcome, apply it to the slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from llmhost.backends.base import BackendFactory, Sleeper
from llmhost.config import HostConfig, RouteConfig
from llmhost.errors import ModelUnavailable
from llmhost.gpu import GpuMonitor
from llmhost.lifecycle.policy import Asleep, Resident, plan_eviction, plan_standby
from llmhost.lifecycle.slot import Lease, Slot
from llmhost.lifecycle.state import ModelState, has_engine
from llmhost.lifecycle.transitions import Clock, Transitions, failed_error, need_of
from llmhost.margin import EngineMargins

log = logging.getLogger("llmhost.lifecycle")

# Why a route's model cannot be found (llmhost.preflight.problem), None when it may load.
Preflight = Callable[[RouteConfig], "str | None"]


class Scheduler:
    def __init__(
        self,
        host: HostConfig,
        slots: dict[str, Slot],
        factory: BackendFactory,
        gpu: GpuMonitor,
        *,
        clock: Clock,
        preflight: Preflight | None,
        route_changed: Callable[[], None],
        margins: EngineMargins | None = None,
    ) -> None:
        self.host = host
        self.slots = slots
        self._gpu = gpu
        self._clock = clock
        self._preflight = preflight
        self._route_changed = route_changed  # a reloaded route took its new settings
        self._wake = asyncio.Event()
        # Why this platform has no sleep mode (None: it has, or nobody asked yet).
        self.standby_unavailable: str | None = None
        self._transitions = Transitions(
            lambda: self.host,
            factory,
            gpu,
            clock=clock,
            wake=self.wake,
            standby_unavailable=lambda: self.standby_unavailable,
            margins=margins,
        )
        self.closing = False
        self.stopped = asyncio.Event()  # set when closing and everything is stopped

    @property
    def op(self) -> asyncio.Task[Any] | None:
        """The GPU operation in progress, if any."""
        return self._transitions.op

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            deadline = self._schedule()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def grant(self, slot: Slot) -> Lease | None:
        """A lease on `slot` if it is ready and under its limit, else None: the only place
        a lease is made (the pass grants queued tickets with it, `acquire` its fast path)."""
        if not (
            slot.state is ModelState.READY
            and slot.backend is not None
            and not slot.evicting
            and slot.next_route is None
            and not slot.retired
            and len(slot.active) < self.host.max_in_flight
        ):
            return None
        lease = Lease(slot, slot.backend)
        slot.active.add(lease)
        slot.last_hit = time.time()
        return lease

    def _schedule(self) -> float | None:
        """One decision pass. Returns when the next timer is due (None: nothing pending)."""
        now = self._clock()
        deadlines: list[float] = []
        for slot in list(self.slots.values()):
            if self._apply_reload(slot, now):
                continue
            self._grant_waiting(slot)
            self._check_failed(slot, now, deadlines)
            self._check_idle(slot, now, deadlines)
        if self.closing:
            self._schedule_close()
        if self._transitions.op is None:
            self._next_operation(now, deadlines)
        return min(deadlines, default=None)

    def _grant_waiting(self, slot: Slot) -> None:
        if slot.state is not ModelState.READY or slot.backend is None:
            return
        while slot.waiting:
            ticket = slot.waiting[0]
            if ticket.granted.done():  # its waiter gave up
                slot.waiting.popleft()
                continue
            lease = self.grant(slot)
            if lease is None:
                break
            slot.waiting.popleft()
            ticket.granted.set_result(lease)
        failure = slot.backend.failure()
        if failure is not None and not slot.active and not slot.evicting:
            self._mark_evicting(slot, f"its engine stopped working ({failure})", self._clock())

    def _apply_reload(self, slot: Slot, now: float) -> bool:
        """Move a reloaded route toward its new settings; True if the slot is gone."""
        if slot.next_route is None and not slot.retired:
            return False
        if slot.state in (ModelState.READY, ModelState.ASLEEP) and not slot.evicting:
            why = "removed from the configuration" if slot.retired else "configuration changed"
            self._mark_evicting(slot, why, now, bounded=False)
        elif slot.state in (ModelState.STOPPED, ModelState.FAILED):
            if slot.retired:
                del self.slots[slot.route.name]
                return True
            assert slot.next_route is not None
            slot.route, slot.next_route = slot.next_route, None
            slot.measured_bytes = slot.failed_at = None  # a fixed route retries at once
            slot.estimated_bytes = None
            self._route_changed()
        return False

    def _check_failed(self, slot: Slot, now: float, deadlines: list[float]) -> None:
        if slot.state is not ModelState.FAILED or not slot.waiting or slot.failed_at is None:
            return
        retry_at = slot.failed_at + self.host.retry_backoff_seconds
        if now < retry_at:
            slot.refuse("load_failed", len(slot.waiting))
            slot.reject_waiting(failed_error(slot, retry_at - now))
            deadlines.append(retry_at)

    def _check_idle(self, slot: Slot, now: float, deadlines: list[float]) -> None:
        # An asleep model's idle time runs from its last request, as if it were awake:
        # standby changes how fast it comes back, not how long it is kept.
        if slot.state not in (ModelState.READY, ModelState.ASLEEP) or slot.evicting or slot.busy:
            return
        idle = slot.route.effective_idle_seconds(self.host)
        due = slot.last_used + idle
        if now >= due:
            self._mark_evicting(slot, f"idle for {idle:g} s", now)
        else:
            deadlines.append(due)

    def _schedule_close(self) -> None:
        now = self._clock()
        for slot in self.slots.values():
            if slot.state in (ModelState.READY, ModelState.ASLEEP) and not slot.evicting:
                self._mark_evicting(slot, "host shutting down", now)
        if self._transitions.op is None and not any(has_engine(s.state) for s in self.slots.values()):
            self.stopped.set()

    def _next_operation(self, now: float, deadlines: list[float]) -> None:
        # 1. Finish evictions already decided: unload (or put to sleep) once drained or
        #    the drain bound passed.
        for slot in self.slots.values():
            if slot.evicting and slot.state is ModelState.ASLEEP:
                self._transitions.unload(slot)
                return
            if slot.evicting and slot.state is ModelState.READY:
                assert slot.drain_started is not None
                drain_deadline = slot.drain_started + self.host.drain_timeout_seconds
                overdue = slot.drain_bounded and now >= drain_deadline
                if not slot.active or overdue:
                    self._evict(slot)
                    return
                if slot.drain_bounded:
                    deadlines.append(drain_deadline)
        if self.closing:
            return
        # 2. Bring in the model whose request has waited longest.
        startable = (ModelState.STOPPED, ModelState.FAILED, ModelState.ASLEEP)
        candidates = [s for s in self.slots.values() if s.waiting and s.state in startable and not s.evicting]
        wanted = min(candidates, key=lambda s: s.oldest_wait() or 0.0, default=None)
        if wanted is None or wanted.estimate_pending:
            return  # an estimate in progress wakes the scheduler when it is done
        asleep = wanted.state is ModelState.ASLEEP
        refused = self._preflight(wanted.route) if self._preflight is not None and not asleep else None
        if refused is not None:
            self._transitions.fail(wanted, refused)  # nothing was evicted for it
            self._wake.set()
            return
        others = [s for s in self.slots.values() if s is not wanted and has_engine(s.state)]
        gpu = self._gpu.memory()
        plan = plan_eviction(
            self.host.policy,
            wanted.route.name,
            need_of(wanted, self.host.policy, gpu.total_bytes if gpu else None),
            [_resident(s) for s in others],
            gpu,
        )
        if not plan.fits:
            log.error("cannot load %s: %s", wanted.route.primary_id, plan.reason)
            wanted.refuse("does_not_fit", len(wanted.waiting))
            wanted.reject_waiting(
                ModelUnavailable(
                    f"{wanted.route.primary_id} cannot be loaded: {plan.reason}.", retry_after=60
                )
            )
            return
        if not plan.evict:
            if asleep:
                self._transitions.wake(wanted)
            else:
                self._transitions.load(wanted, reserve_bytes=self._standby_reserve(wanted))
            return
        wanted.swap_pending = True
        oldest = wanted.oldest_wait() or now
        for name in plan.evict:
            victim = self.slots[name]
            if victim.evicting or victim.state not in (ModelState.READY, ModelState.ASLEEP):
                continue
            hold_until = max(victim.ready_at, oldest) + self.host.max_hold_seconds
            if victim.busy and now < hold_until:
                deadlines.append(hold_until)  # let it finish what it has, within the hold
                continue
            why = f"making room for {wanted.route.primary_id}"
            self._mark_evicting(victim, why, now, standby=True)
            self._wake.set()  # unload it in the next pass if it is already drained

    def _evict(self, slot: Slot) -> None:
        """Take a drained (or overdue) model off the GPU: to sleep when its eviction allows
        standby and the RAM budget has room, else shut down."""
        if not (slot.to_standby and self._may_sleep(slot)):
            self._transitions.unload(slot)
            return
        level = slot.route.sleep_level
        ram = _standby_ram(slot, level)
        asleep = [
            Asleep(s.route.name, s.asleep_ram_bytes or 0, s.last_used)
            for s in self.slots.values()
            if s.state is ModelState.ASLEEP and not s.evicting
        ]
        plan = plan_standby(slot.route.name, ram, self.host.standby_ram_bytes, asleep)
        if not plan.sleep:
            log.info("%s shuts down instead of sleeping: %s", slot.route.primary_id, plan.reason)
            self._transitions.unload(slot)
        elif plan.shut_down:
            # One GPU operation at a time: shut the first one down; the next pass re-plans.
            victim = self.slots[plan.shut_down[0]]
            self._mark_evicting(victim, f"the standby RAM budget, for {slot.route.primary_id}", self._clock())
            self._transitions.unload(victim)
        else:
            self._transitions.sleep(slot, ram)

    def _standby_reserve(self, loading: Slot) -> int:
        """GPU memory to leave free beside a standby route's engine: an asleep engine keeps
        its CUDA context (about the engine margin), so for each other standby route not
        asleep now (those asleep already show in the free reading) that much stays free,
        or this engine, sized to fill the card, could not wake later beside them. A route
        without standby never wakes, so it may take everything."""
        if self.standby_unavailable is not None or loading.route.standby != "sleep":
            return 0
        if loading.standby_disabled is not None:
            return 0
        later = [
            s
            for s in self.slots.values()
            if s is not loading
            and s.route.standby == "sleep"
            and s.standby_disabled is None
            and s.state is not ModelState.ASLEEP
        ]
        return len(later) * self._transitions.margins.in_use(self.host, self._gpu.name).bytes

    def _may_sleep(self, slot: Slot) -> bool:
        backend = slot.backend
        return (
            slot.route.standby == "sleep"
            and self.standby_unavailable is None
            and slot.standby_problem is None
            and slot.standby_disabled is None
            and slot.probe is not None
            and not slot.active  # vLLM's sleep would abort them: only a drained model sleeps
            and isinstance(backend, Sleeper)
            and backend.failure() is None
        )

    def _mark_evicting(
        self, slot: Slot, reason: str, now: float, *, bounded: bool = True, standby: bool = False
    ) -> None:
        slot.evicting = reason
        slot.drain_started = now
        slot.drain_bounded = bounded
        slot.to_standby = standby  # only making room sleeps; idle, reloads and stops shut down
        if slot.active:
            log.info(
                "evicting %s (%s): draining %d in-flight request(s)",
                slot.route.primary_id,
                reason,
                len(slot.active),
            )


def _resident(slot: Slot) -> Resident:
    if slot.state is ModelState.ASLEEP:
        return Resident(slot.route.name, slot.busy, slot.last_used, slot.asleep_gpu_bytes, asleep=True)
    return Resident(slot.route.name, slot.busy, slot.last_used, slot.measured_bytes)


def _standby_ram(slot: Slot, level: int) -> int:
    """The host RAM `slot` would hold asleep: what its backend expects (level 1: the
    weights), else its whole GPU footprint (an upper bound)."""
    backend = slot.backend
    expected = backend.standby_ram_bytes(level) if isinstance(backend, Sleeper) else None
    if expected is not None:
        return expected
    return 0 if level == 2 else slot.measured_bytes or 0

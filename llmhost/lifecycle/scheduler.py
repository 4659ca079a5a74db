"""The scheduling pass: the one owner of every model's state.

`run` wakes on any event (a new ticket, a released lease, a finished GPU operation, a
request to close, reload or unload, a timer on its clock) and runs `_schedule`, a
synchronous pass over all models, so nothing changes between a decision and its action.
The pass applies the outcome of a finished GPU operation, grants leases, answers the
requests that must not wait, marks models for eviction (idle, making room, reloaded,
shutting down) and decides the next GPU operation; its `Transitions`
(llmhost.lifecycle.transitions) start that operation and apply its outcome. Every state
change happens in a pass.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmhost.backends.base import BackendFactory, Sleeper
from llmhost.config import HostConfig, RouteConfig
from llmhost.errors import ModelNotFound, ModelUnavailable, ShuttingDown
from llmhost.gpu.margin import EngineMargins
from llmhost.gpu.monitor import GpuMonitor
from llmhost.lifecycle.asleep import asleep_graph_bytes
from llmhost.lifecycle.clock import Clock
from llmhost.lifecycle.operations import Abandoned
from llmhost.lifecycle.policy import Asleep, Candidate, plan_eviction, plan_standby
from llmhost.lifecycle.sizing import resident_hold_bytes
from llmhost.lifecycle.slot import Lease, Slot
from llmhost.lifecycle.state import ModelState, has_engine, uses_gpu
from llmhost.lifecycle.transitions import Operation, Transitions, failed_error, need_of

log = logging.getLogger("llmhost.lifecycle")

# Why a route's model cannot be found (llmhost.preflight.model.problem), None when it may load.
Preflight = Callable[[RouteConfig], "str | None"]


@dataclass(frozen=True)
class StandbyPlatform:
    """vLLM's answer on sleep mode for this machine: unknown until it has answered, then
    available (`problem` None) or unavailable (why). Standby routes wait for it to load."""

    known: bool = False
    problem: str | None = None

    @property
    def available(self) -> bool:
        return self.known and self.problem is None


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
        self.standby = StandbyPlatform()  # set by the manager once vLLM has answered
        # How long a request may wait for its model (llmhost.lifecycle.bounds); the manager
        # sets it from the catalog at start-up and at each reload.
        self.max_wait = float("inf")
        self._transitions = Transitions(
            lambda: self.host,
            factory,
            gpu,
            clock=clock,
            wake=self.wake,
            standby_unavailable=lambda: self.standby.problem,
            margins=margins,
        )
        self.closing = False
        self.stopped = asyncio.Event()  # set when closing and everything is stopped
        self.passes = 0  # passes run so far
        self._pass_waiters: list[asyncio.Future[None]] = []

    @property
    def orphans(self) -> list[Abandoned]:
        """Engines no model owns, waiting to be shut down."""
        return self._transitions.orphans

    @property
    def op(self) -> Operation | None:
        """The GPU operation in progress, if any."""
        return self._transitions.op

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            deadline = self._schedule()
            self._passed()
            await asyncio.sleep(0)  # a pass that woke itself still lets the others run first
            await self._clock.wait(self._wake, deadline)

    async def next_pass(self) -> None:
        """Return after the next pass: every state change happens in one, so a caller
        waiting for a state checks again each time (tests, `ModelManager.wait_state`)."""
        waiter = asyncio.get_running_loop().create_future()
        self._pass_waiters.append(waiter)
        await waiter

    async def settled(self) -> None:
        """Return once every event so far has had its pass and no GPU operation runs:
        nothing changes now until a new event or a timer."""
        while self.passes == 0 or self._wake.is_set() or self._transitions.op is not None:
            await self.next_pass()

    def _passed(self) -> None:
        self.passes += 1
        waiters, self._pass_waiters = self._pass_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

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
            and slot.backend.failure() is None  # a dead engine gets no new lease
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
        op = self._transitions.op
        if op is not None and op.task.done():
            self._finish(op)
        op = self._transitions.op
        try:
            self._check_operation(now, deadlines)
        except Exception as exc:
            if op is None or op.slot is None:
                raise
            self._contain(op.slot, exc)
        for slot in list(self.slots.values()):
            try:
                self._handle(slot, now, deadlines)
            except Exception as exc:
                self._contain(slot, exc)
        if self._transitions.op is None:
            self._next_operation(now, deadlines)
        if self._transitions.op is None and self._transitions.orphans:
            self._next_operation(now, deadlines)  # an error contained just now left an engine
        op = self._transitions.op
        if op is not None and op.deadline is not None and not op.abort.done():
            deadlines.append(op.deadline)  # an operation started in this pass has its bound too
        if self.closing and op is None and not self._holds_engines():
            self.stopped.set()
        return min(deadlines, default=None)

    def _handle(self, slot: Slot, now: float, deadlines: list[float]) -> None:
        """Everything the pass does for one model, except starting a GPU operation."""
        if self._apply_reload(slot, now):
            return
        if self.closing:
            self._close_slot(slot, now)
        self._check_dead(slot, now)  # before anything is granted to it
        self._check_unload(slot, now)
        self._grant_waiting(slot)
        self._check_waits(slot, now, deadlines)
        self._check_failed(slot, now, deadlines)
        self._check_idle(slot, now, deadlines)

    def _contain(self, slot: Slot, exc: Exception) -> None:
        """An error in one model's handling: that model fails safely, the pass goes on for
        the others (an error that escapes the pass ends the scheduler: see the manager)."""
        log.error(
            "internal error while handling %s: it is marked failed and its engine shut down",
            slot.route.primary_id,
            exc_info=exc,
        )
        # No wake-up of its own: an error that recurs in every pass must not make passes
        # run back to back. The engine it leaves is shut down at the end of this pass.
        self._transitions.contain(slot, f"internal error in the host: {type(exc).__name__}: {exc}")

    def _finish(self, op: Operation) -> None:
        try:
            self._transitions.finish()
        except Exception as exc:
            if op.slot is None:  # an orphan's shutdown: nothing to fail, its engine is stopped or lost
                log.error("shutting down an orphaned engine failed", exc_info=exc)
            else:
                self._contain(op.slot, exc)

    def _check_operation(self, now: float, deadlines: list[float]) -> None:
        """The operation in progress past its bound (a load's start timeout, a sleep's or a
        wake's): abort it. An abandoned load's waiters get their 503 now."""
        op = self._transitions.op
        if op is None or op.deadline is None or op.abort.done():
            return
        if now < op.deadline:
            deadlines.append(op.deadline)
            return
        slot = op.slot
        if op.kind == "load" and slot is not None:
            if self._transitions.abandon(slot, op.overdue, failed=True):
                slot.count_refused("start_timeout", len(slot.waiting))
                slot.reject_waiting(
                    ModelUnavailable(
                        f"{slot.route.primary_id} did not become ready: {op.overdue}. Retry later; "
                        "START_TIMEOUT_SECONDS sets the limit.",
                        retry_after=self.host.retry_backoff_seconds or 30,
                    )
                )
                self._wake.set()
        else:
            op.stop(op.overdue)

    def _holds_engines(self) -> bool:
        return bool(self._transitions.orphans) or any(has_engine(s.state) for s in self.slots.values())

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

    def request_unload(self, slot: Slot) -> asyncio.Future[None]:
        """Unload `slot` now (llmhost unload): the future resolves once it holds no engine
        and its memory is back."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slot.unload_waiters.append(done)
        slot.unload_requested = True
        self.wake()
        return done

    def _check_unload(self, slot: Slot, now: float) -> None:
        """An unload request: the requests waiting for the model get 503 (they would load it
        right back), a load in progress is abandoned, a ready or asleep model is shut down
        after its drain; a sleep or a wake in progress finishes first."""
        if slot.unload_requested and slot.state not in (ModelState.SLEEPING, ModelState.WAKING):
            slot.unload_requested = False
            if slot.waiting:
                slot.count_refused("unloaded", len(slot.waiting))
                slot.reject_waiting(
                    ModelUnavailable(
                        f"{slot.route.primary_id} was unloaded on request (llmhost unload); "
                        "send the request again to load it.",
                        retry_after=1,
                    )
                )
            if slot.state is ModelState.LOADING:
                self._transitions.abandon(slot, "unloaded on request", failed=False)
            elif slot.state in (ModelState.READY, ModelState.ASLEEP):
                self._take_down(slot, "unloaded on request", now)
        if slot.unload_waiters and not slot.unload_requested:
            if not has_engine(slot.state) and not self._busy_with(slot):
                _resolve_all(slot.unload_waiters)

    def _check_waits(self, slot: Slot, now: float, deadlines: list[float]) -> None:
        """Requests waiting past max_wait get 503, unless their model is loading or waking:
        that has its own bound, and cutting its requests would load it for nobody."""
        if not slot.waiting:
            return
        if slot.state in (ModelState.LOADING, ModelState.WAKING):
            return  # the load's outcome (or its bound) runs a pass, which looks again
        bound = self.max_wait
        while slot.waiting and slot.waiting[0].arrived + bound <= now:
            ticket = slot.waiting.popleft()
            if ticket.granted.done():
                continue  # its waiter gave up
            slot.count_refused("wait_timeout")
            ticket.granted.set_exception(
                ModelUnavailable(
                    f"{slot.route.primary_id} did not become ready within {bound:g} s "
                    f"(it is {slot.state.value}). Retry later; [host] max_wait_seconds sets the limit.",
                    retry_after=30,
                )
            )
        if slot.waiting:
            deadlines.append(slot.waiting[0].arrived + bound)

    def _check_dead(self, slot: Slot, now: float) -> None:
        """A ready model whose engine died is evicted at once: no drain (the requests still
        holding it cannot finish; their leases are revoked with the failure), no sleep,
        and its waiting requests wait for the cold load that follows."""
        if slot.state is not ModelState.READY or slot.backend is None:
            return
        failure = slot.backend.failure()
        if failure is None or (
            slot.evicting and slot.drain_deadline is not None and slot.drain_deadline <= now
        ):
            return
        log.error("%s: %s; unloading it now, the next request loads it again", slot.route.primary_id, failure)
        self._mark_evicting(slot, f"its engine stopped working ({failure})", now)
        slot.drain_deadline = now

    def _apply_reload(self, slot: Slot, now: float) -> bool:
        """Move a reloaded route toward its new settings; True if the slot is gone."""
        if slot.next_route is None and not slot.retired:
            return False
        why = "removed from the configuration" if slot.retired else "configuration changed"
        if slot.retired and slot.waiting:
            slot.reject_waiting(ModelNotFound(f"The route '{slot.route.name}' was removed."))
        if slot.state is ModelState.LOADING:
            # A load of the old settings serves nobody: a changed route's waiting requests
            # stay queued for the load with the new ones.
            self._transitions.abandon(slot, f"the route was {why}" if slot.retired else why, failed=False)
        elif slot.state in (ModelState.READY, ModelState.ASLEEP):
            self._take_down(slot, why, now)
        elif slot.state in (ModelState.STOPPED, ModelState.FAILED) and not self._busy_with(slot):
            if slot.retired:
                _resolve_all(slot.unload_waiters)
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
            slot.count_refused("load_failed", len(slot.waiting))
            slot.reject_waiting(failed_error(slot, retry_at - now))
            deadlines.append(retry_at)

    def _check_idle(self, slot: Slot, now: float, deadlines: list[float]) -> None:
        # An asleep model's idle time runs from its last request, as if it were awake:
        # standby changes how fast it comes back, not how long it is kept.
        if slot.state not in (ModelState.READY, ModelState.ASLEEP) or slot.evicting or slot.busy:
            return
        idle = slot.route.idle_unload_seconds(self.host)
        if idle is None:  # a resident route without idle_seconds of its own stays loaded
            return
        due = slot.last_used + idle
        if now >= due:
            self._mark_evicting(slot, f"idle for {idle:g} s", now)
        else:
            deadlines.append(due)

    def _close_slot(self, slot: Slot, now: float) -> None:
        """The host is closing: refuse what waits, abandon a load, shut every engine down."""
        if slot.waiting:
            slot.count_refused("shutting_down", len(slot.waiting))
            slot.reject_waiting(ShuttingDown("The host is shutting down.", retry_after=30))
        if slot.state is ModelState.LOADING:
            self._transitions.abandon(slot, "the host is shutting down", failed=False)
        elif slot.state in (ModelState.READY, ModelState.ASLEEP):
            self._take_down(slot, "host shutting down", now)

    def _take_down(self, slot: Slot, reason: str, now: float) -> None:
        """Shut a ready or asleep model down for good (a stop, a reload, an unload request):
        its in-flight requests drain within drain_timeout_seconds, and it never goes to
        sleep, even when an eviction that would have put it to sleep is already draining."""
        if not slot.evicting:
            self._mark_evicting(slot, reason, now)
        slot.to_standby = False  # only making room for another model sleeps

    def _busy_with(self, slot: Slot) -> bool:
        """Whether the GPU operation in progress is this model's."""
        op = self._transitions.op
        return op is not None and op.slot is slot

    def _next_operation(self, now: float, deadlines: list[float]) -> None:
        # 0. Engines no model owns: shut them down before anything else takes memory.
        if self._transitions.orphans:
            self._transitions.reclaim_orphan()
            return
        handling: list[Slot] = []  # the model being decided on, to contain an error in it
        try:
            self._choose_operation(now, deadlines, handling)
        except Exception as exc:
            if not handling:
                raise
            self._contain(handling[-1], exc)

    def _choose_operation(self, now: float, deadlines: list[float], handling: list[Slot]) -> None:
        # 1. Finish evictions already decided: unload (or put to sleep) once drained or
        #    the drain bound passed.
        for slot in self.slots.values():
            handling.append(slot)
            if slot.evicting and slot.state is ModelState.ASLEEP:
                self._transitions.unload(slot)
                return
            if slot.evicting and slot.state is ModelState.READY:
                drain_deadline = slot.drain_deadline
                overdue = drain_deadline is not None and now >= drain_deadline
                if not slot.active or overdue:
                    self._evict(slot)
                    return
                if drain_deadline is not None:
                    deadlines.append(drain_deadline)
        if self.closing:
            return
        # 2. Bring in the model whose request has waited longest.
        startable = (ModelState.STOPPED, ModelState.FAILED, ModelState.ASLEEP)
        candidates = [s for s in self.slots.values() if s.waiting and s.state in startable and not s.evicting]
        wanted = min(candidates, key=lambda s: s.oldest_wait() or 0.0, default=None)
        if wanted is None or wanted.estimate_pending:
            return  # an estimate in progress wakes the scheduler when it is done
        handling.append(wanted)
        if wanted.route.standby == "sleep" and not self.standby.known:
            # Its engine's size depends on whether engines will sleep beside it: wait for
            # vLLM's answer (the manager wakes the scheduler with it).
            return
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
            [_candidate(s) for s in others],
            gpu,
            pinned=wanted.route.resident,
        )
        if not plan.fits:
            log.error("cannot load %s: %s", wanted.route.primary_id, plan.reason)
            wanted.count_refused("does_not_fit", len(wanted.waiting))
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
                reserve = self._standby_reserve(wanted) + self._resident_reserve(wanted)
                self._transitions.load(wanted, reserve_bytes=reserve)
            return
        wanted.swap_pending = True
        oldest = wanted.oldest_wait() or now
        for name in plan.evict:
            victim = self.slots[name]
            handling.append(victim)
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
        its CUDA context (about the engine margin), and its CUDA graphs when they are not
        offloaded (llmhost.lifecycle.asleep), so for each other standby route not
        asleep now (those asleep already show in the free reading) that much stays free,
        or this engine, sized to fill the card, could not wake later beside them. A route
        without standby never wakes, so it may take everything."""
        if not self.standby.available or loading.route.standby != "sleep":
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
        margin = self._transitions.margins.in_use(self.host, self._gpu.name).bytes
        return sum(margin + asleep_graph_bytes(s.route) for s in later)  # graphs: lifecycle.asleep

    def _resident_reserve(self, loading: Slot) -> int:
        """GPU memory to leave free for resident routes not loaded now (idle, unloaded,
        failed): the others size themselves as if they were (llmhost.lifecycle.sizing)."""
        gpu = self._gpu.memory()
        margin = self._transitions.margins.in_use(self.host, self._gpu.name).bytes
        return sum(
            resident_hold_bytes(
                s.route,
                gpu.total_bytes if gpu else None,
                margin_bytes=margin,
                measured_bytes=s.measured_bytes,
                estimate_bytes=s.estimated_bytes,
            )
            for s in self.slots.values()
            if s is not loading and s.route.resident and not s.retired and not uses_gpu(s.state)
        )

    def _may_sleep(self, slot: Slot) -> bool:
        backend = slot.backend
        return (
            slot.route.standby == "sleep"
            and self.standby.available
            and slot.standby_problem is None
            and slot.standby_disabled is None
            and slot.probe is not None
            and not slot.active  # vLLM's sleep would abort them: only a drained model sleeps
            and isinstance(backend, Sleeper)
            and backend.failure() is None
        )

    def _mark_evicting(self, slot: Slot, reason: str, now: float, *, standby: bool = False) -> None:
        slot.evicting = reason
        slot.drain_deadline = now + self.host.drain_timeout_seconds
        slot.to_standby = standby  # only making room sleeps; idle, reloads and stops shut down
        if slot.active:
            log.info(
                "evicting %s (%s): draining %d in-flight request(s)",
                slot.route.primary_id,
                reason,
                len(slot.active),
            )


def _resolve_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    waiters.clear()


def _candidate(slot: Slot) -> Candidate:
    pinned = slot.route.resident
    if slot.state is ModelState.ASLEEP:
        return Candidate(
            slot.route.name, slot.busy, slot.last_used, slot.asleep_gpu_bytes, asleep=True, pinned=pinned
        )
    return Candidate(slot.route.name, slot.busy, slot.last_used, slot.measured_bytes, pinned=pinned)


def _standby_ram(slot: Slot, level: int) -> int:
    """The host RAM `slot` would hold asleep: what its backend expects (level 1: the
    weights), else its whole GPU footprint (an upper bound)."""
    backend = slot.backend
    expected = backend.standby_ram_bytes(level) if isinstance(backend, Sleeper) else None
    if expected is not None:
        return expected
    return 0 if level == 2 else slot.measured_bytes or 0

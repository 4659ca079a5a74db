"""Per-model bookkeeping: state, leases, queue and history (changed by the scheduler)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from llmhost.backends.base import Backend, StartReport, start_stats_of
from llmhost.config import RouteConfig
from llmhost.lifecycle.durations import Durations
from llmhost.lifecycle.standby import Standby, StandbyPlatform, cudagraphs_asleep, standby_status
from llmhost.lifecycle.state import ModelState, check_transition

# Why requests got a 503 from the manager (llmhost_requests_refused_total's reasons).
REFUSAL_REASONS = (
    "overloaded",
    "shutting_down",
    "load_failed",
    "start_timeout",
    "wait_timeout",
    "does_not_fit",
    "unloaded",
)
# Cold-start histogram buckets in seconds: a tiny model on CPU to a large one from a slow disk.
COLD_START_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)


@dataclass(eq=False)
class Ticket:
    """A request waiting for its model; the scheduler resolves `granted` with a Lease."""

    arrived: float
    granted: asyncio.Future[Lease]


@dataclass(eq=False)
class Lease:
    """The right to use a loaded model until released. Held for a whole request or stream."""

    slot: Slot
    backend: Backend
    revoked: str | None = None  # set when the model was unloaded under the request
    released: bool = False

    @property
    def route(self) -> RouteConfig:
        return self.slot.route


@dataclass(eq=False)
class Eviction:
    """A model on its way off the GPU: no new leases; it goes once drained."""

    reason: str
    drain_deadline: float | None  # in-flight requests are cut off then (None: no bound)
    to_standby: bool = False  # it may go to sleep instead (only making room for another model)


@dataclass(eq=False)
class Slot:
    route: RouteConfig
    state: ModelState = ModelState.STOPPED
    backend: Backend | None = None
    active: set[Lease] = field(default_factory=set)
    waiting: deque[Ticket] = field(default_factory=deque)

    eviction: Eviction | None = None  # in progress: no new leases are granted

    # models.toml was reloaded: the route's new settings (applied once it is stopped),
    # or retired when the route was removed.
    next_route: RouteConfig | None = None
    retired: bool = False
    swap_pending: bool = False  # the next load of this model is a swap
    # The load in progress was abandoned (unloading while its engine is taken back): why,
    # and whether that counts as a failed load (the start timeout) or not (a stop, a reload).
    abandoned: str | None = None
    abandon_failed: bool = False
    # `llmhost unload` / POST /admin/unload: the pass takes the model down (once it is not
    # sleeping or waking), then resolves the waiters once it holds no engine and no memory.
    unload_requested: bool = False
    unload_waiters: list[asyncio.Future[None]] = field(default_factory=list)
    # Bumped when the scheduler contains an error in this model's handling: an operation
    # started before then finds the slot moved on, and its outcome is reclaimed, not applied.
    epoch: int = 0
    preparing: int = 0  # requests held up before they can ask for a lease (library import)

    last_used: float = 0.0  # monotonic; end of the last lease (or time of load)
    last_hit: float | None = None  # wall clock, for people
    ready_at: float = 0.0
    load_started: float | None = None
    loads: int = 0
    swaps: int = 0
    evictions: int = 0
    cold_starts: Durations = field(default_factory=lambda: Durations(COLD_START_BUCKETS))
    failed_loads: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # 503s by reason (REFUSAL_REASONS)
    measured_bytes: int | None = None
    estimated_bytes: int | None = None  # llmhost.estimate's figure (fit policy, auto memory)
    estimate_pending: bool = False
    budget_bytes: int | None = None  # the GPU memory the host gave the running engine
    start_report: StartReport | None = None  # what the last cold start's engine said about it
    last_error: str | None = None
    failed_at: float | None = None

    standby: Standby = field(default_factory=Standby)  # warm standby (llmhost.lifecycle.standby)

    def to(self, new: ModelState) -> None:
        self.state = check_transition(self.state, new)

    def force(self, new: ModelState) -> None:
        """The one state change outside the table: an error in this model's handling was
        contained, and the model is put where it is safe whatever it was doing
        (llmhost.lifecycle.failing.contain)."""
        self.state = new

    @property
    def busy(self) -> bool:
        return bool(self.active or self.waiting)

    def count_refused(self, reason: str, count: int = 1) -> None:
        """Count `count` requests refused with a 503 for `reason` (one of REFUSAL_REASONS)."""
        if count > 0:
            self.refused[reason] = self.refused.get(reason, 0) + count

    def reject_waiting(self, error: Exception) -> None:
        """Answer every queued request with `error`."""
        while self.waiting:
            ticket = self.waiting.popleft()
            if not ticket.granted.done():
                ticket.granted.set_exception(error)

    def oldest_wait(self) -> float | None:
        return self.waiting[0].arrived if self.waiting else None

    def stats(
        self, now: float, standby_known: bool = True, standby_unavailable: str | None = None
    ) -> dict[str, Any]:
        starts = self.cold_starts
        record = self.standby
        wakes = record.wake_seconds
        platform = StandbyPlatform(standby_known, standby_unavailable)
        standby, standby_reason = standby_status(self, platform)
        return {
            "route": self.route.name,
            "model": self.route.primary_id,
            "kind": self.route.kind,
            "resident": self.route.resident,  # loaded at start-up, never evicted for another route
            "state": self.state.value,
            "loading_seconds": round(now - self.load_started, 1)
            if self.state in (ModelState.LOADING, ModelState.WAKING) and self.load_started is not None
            else None,
            "last_hit": _iso(self.last_hit),
            "loads": self.loads,
            "swaps": self.swaps,
            "evictions": self.evictions,
            "cold_start_seconds": starts.summary(),
            "cold_start_histogram": starts.histogram(),
            **start_stats_of(self.start_report),  # the context it got, and why
            "failed_loads": self.failed_loads,
            "refused": {r: self.refused.get(r, 0) for r in (*REFUSAL_REASONS, *self.refused)},
            "in_flight": len(self.active),
            "waiting": len(self.waiting) + self.preparing,
            "memory_bytes": self.measured_bytes,
            "memory_budget_bytes": self.budget_bytes,
            "estimated_bytes": self.estimated_bytes,
            "last_error": self.last_error,
            "standby": standby,
            "standby_reason": standby_reason,
            "sleep_level": self.route.sleep_level if standby != "off" else None,
            # Where its CUDA graphs go while it sleeps (llmhost.lifecycle.standby): offloaded to
            # RAM, or on_gpu with room kept for them beside the other engines.
            "standby_cudagraphs": cudagraphs_asleep(self.route),
            "standby_ram_bytes": record.asleep_ram_bytes if self.state is ModelState.ASLEEP else None,
            "sleeps": record.sleeps,
            "wakes": record.wakes,
            "wake_seconds": wakes.summary(),
            "wake_histogram": wakes.histogram(),
            "wake_failures": record.wake_failures,
            "last_wake_error": record.last_wake_error,
        }


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))

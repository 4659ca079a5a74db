"""Warm standby's rules, in one place: when a model may sleep instead of shutting down,
what it may hold asleep, what the engines beside it leave free for its wake, and when
standby gives up on a route (docs/standby.md).

Here: vLLM's answer for this machine (`StandbyPlatform`), a model's standby record
(`Standby`, kept on its slot), the sleep-or-shut-down decision for a drained model
(`sleep_or_unload`, with the RAM budget's plan `plan_standby`), the GPU memory to keep free
for later wakes (`standby_reserve`), the failure limit (`standby_failed`), the setting as
`/stats` shows it (`standby_status`), and where an asleep engine keeps its CUDA graphs.
The transitions that carry a sleep or a wake out are llmhost.lifecycle.sleeping; the slow
work is llmhost.lifecycle.operations.

vLLM's sleep gives back the weights and the KV cache; the engine's CUDA context stays
(about the engine margin), and so does its CUDA-graph pool unless the engine argument
`sleep_mode_offload_cudagraph` is on (vLLM 0.32's ModelConfig: "Back up CUDA graph memory
to CPU during sleep, restored in place on wake"; about 0.5 GiB measured on a 4080). The
host turns it on for standby routes (llmhost.backends.vllm), so an asleep engine keeps
its context only; a route that turns it off in [engine] keeps its graphs on the GPU, and
the engines loaded beside it leave room for them too (`standby_reserve`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmhost.backends.base import Probe, Sleeper
from llmhost.config import RouteConfig
from llmhost.estimate.figures import CUDA_GRAPH_BYTES
from llmhost.lifecycle.durations import Durations
from llmhost.lifecycle.state import ModelState
from llmhost.units import GIB

if TYPE_CHECKING:
    from llmhost.lifecycle.context import Context
    from llmhost.lifecycle.slot import Slot

log = logging.getLogger("llmhost.lifecycle")

# Failed sleeps or wakes after which a route's standby is off until the host restarts.
STANDBY_FAILURE_LIMIT = 2
# Wake histogram buckets in seconds: vLLM's published wakes are 0.3-3 s; 60 s is the bound.
WAKE_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)


@dataclass(frozen=True)
class StandbyPlatform:
    """vLLM's answer on sleep mode for this machine: unknown until it has answered, then
    available (`problem` None) or unavailable (why). Standby routes wait for it to load."""

    known: bool = False
    problem: str | None = None

    @property
    def available(self) -> bool:
        return self.known and self.problem is None


@dataclass(eq=False)
class Standby:
    """A model's warm standby: what its engine needs to sleep and wake, and its history."""

    probe: Probe | None = None  # recorded after the cold load; every wake must reproduce it
    problem: str | None = None  # why the running engine cannot sleep
    disabled: str | None = None  # after repeated failed sleeps or wakes, until restart
    failures: int = 0
    asleep_ram_bytes: int | None = None  # host RAM held while asleep (None: not asleep)
    asleep_gpu_bytes: int | None = None  # GPU memory still held while asleep, when measured
    sleeps: int = 0
    wakes: int = 0
    wake_seconds: Durations = field(default_factory=lambda: Durations(WAKE_BUCKETS))
    wake_failures: int = 0
    last_wake_error: str | None = None

    def forget_engine(self) -> None:
        """The engine is gone: nothing of it is asleep, and its probe is no one's.
        `problem` stays: /stats says why the last engine could not sleep."""
        self.probe = None
        self.asleep_ram_bytes = self.asleep_gpu_bytes = None


def standby_status(slot: Slot, platform: StandbyPlatform) -> tuple[str, str | None]:
    """The standby setting of `slot` as it stands: off, checking, on, unavailable or
    disabled, and why."""
    if slot.route.standby == "off":
        return "off", None
    if not platform.known:
        return "checking", "asking vLLM whether this machine has a sleep mode"
    if platform.problem is not None or slot.standby.problem is not None:
        return "unavailable", platform.problem or slot.standby.problem
    if slot.standby.disabled is not None:
        return "disabled", slot.standby.disabled
    return "on", None


def may_sleep(ctx: Context, slot: Slot) -> bool:
    """Whether a drained model may go to sleep instead of shutting down."""
    backend = slot.backend
    return (
        slot.route.standby == "sleep"
        and ctx.standby.available
        and slot.standby.problem is None
        and slot.standby.disabled is None
        and slot.standby.probe is not None
        and not slot.active  # vLLM's sleep would abort them: only a drained model sleeps
        and isinstance(backend, Sleeper)
        and backend.failure() is None
    )


def standby_ram(slot: Slot, level: int) -> int:
    """The host RAM `slot` would hold asleep: what its backend expects (level 1: the
    weights), else its whole GPU footprint (an upper bound)."""
    backend = slot.backend
    expected = backend.standby_ram_bytes(level) if isinstance(backend, Sleeper) else None
    if expected is not None:
        return expected
    return 0 if level == 2 else slot.measured_bytes or 0


@dataclass(frozen=True)
class Asleep:
    """A model in standby, as the RAM budget sees it."""

    name: str
    ram_bytes: int  # host RAM it holds
    last_used: float


@dataclass(frozen=True)
class StandbyPlan:
    sleep: bool  # False: shut the model down instead
    shut_down: tuple[str, ...]  # asleep models to shut down first, least recently used first
    reason: str


def plan_standby(name: str, ram_bytes: int, budget_bytes: int, asleep: Sequence[Asleep]) -> StandbyPlan:
    """Whether `name` may sleep holding `ram_bytes` of host RAM within `budget_bytes`
    (standby_ram_gib), and which asleep models must be shut down to make room."""
    if ram_bytes > budget_bytes:
        return StandbyPlan(
            False,
            (),
            f"asleep it would hold {ram_bytes / GIB:.1f} GiB of RAM, more than standby_ram_gib "
            f"({budget_bytes / GIB:.1f} GiB)",
        )
    held = sum(a.ram_bytes for a in asleep)
    shut: list[str] = []
    for other in sorted(asleep, key=lambda a: a.last_used):
        if held + ram_bytes <= budget_bytes:
            break
        shut.append(other.name)
        held -= other.ram_bytes
    why = f"shutting down {', '.join(shut)} for RAM" if shut else "within standby_ram_gib"
    return StandbyPlan(True, tuple(shut), f"sleeps holding {ram_bytes / GIB:.1f} GiB of RAM, {why}")


@dataclass(frozen=True)
class SleepOrUnload:
    """What to do with a drained (or overdue) model leaving the GPU."""

    sleep: bool  # False: shut it down
    ram_bytes: int = 0  # the host RAM it will hold asleep
    shut_down_first: str | None = None  # an asleep model to shut down first, for RAM


def sleep_or_unload(ctx: Context, slot: Slot) -> SleepOrUnload:
    """Take `slot` off the GPU to sleep when its eviction allows standby and the RAM
    budget has room, else shut it down. One GPU operation at a time: when asleep models
    must go for RAM, the first of them goes now and the next pass decides again."""
    eviction = slot.eviction
    if not (eviction is not None and eviction.to_standby and may_sleep(ctx, slot)):
        return SleepOrUnload(False)
    ram = standby_ram(slot, slot.route.sleep_level)
    asleep = [
        Asleep(s.route.name, s.standby.asleep_ram_bytes or 0, s.last_used)
        for s in ctx.slots.values()
        if s.state is ModelState.ASLEEP and s.eviction is None
    ]
    plan = plan_standby(slot.route.name, ram, ctx.host.standby_ram_bytes, asleep)
    if not plan.sleep:
        log.info("%s shuts down instead of sleeping: %s", slot.route.primary_id, plan.reason)
        return SleepOrUnload(False)
    return SleepOrUnload(True, ram, plan.shut_down[0] if plan.shut_down else None)


def standby_reserve(ctx: Context, loading: Slot) -> int:
    """GPU memory to leave free beside a standby route's engine: an asleep engine keeps
    its CUDA context (about the engine margin), and its CUDA graphs when they are not
    offloaded (`asleep_graph_bytes`), so for each other standby route not asleep now
    (those asleep already show in the free reading) that much stays free, or this
    engine, sized to fill the card, could not wake later beside them. A route without
    standby never wakes, so it may take everything."""
    if not ctx.standby.available or loading.route.standby != "sleep":
        return 0
    if loading.standby.disabled is not None:
        return 0
    later = [
        s
        for s in ctx.slots.values()
        if s is not loading
        and s.route.standby == "sleep"
        and s.standby.disabled is None
        and s.state is not ModelState.ASLEEP
    ]
    margin = ctx.margin_bytes()
    return sum(margin + asleep_graph_bytes(s.route) for s in later)


def standby_failed(slot: Slot, reason: str) -> None:
    """A sleep or a wake failed: after STANDBY_FAILURE_LIMIT of them the route's standby
    is off until the host restarts (it swaps by shutdown)."""
    record = slot.standby
    record.failures += 1
    log.error("standby of %s failed: %s", slot.route.primary_id, reason)
    if record.failures >= STANDBY_FAILURE_LIMIT:
        record.disabled = f"{record.failures} failed sleeps or wakes since the host started; last: {reason}"
        log.error(
            "standby disabled for %s until the host restarts (%d failures); it swaps by shutdown",
            slot.route.primary_id,
            record.failures,
        )


def cudagraphs_asleep(route: RouteConfig) -> str | None:
    """Where an asleep engine of `route` keeps its CUDA graphs: "offloaded" (to host RAM,
    the host's default), "on_gpu" ([engine] sleep_mode_offload_cudagraph = false) or
    "none" (enforce_eager: it has none). None: the route never sleeps a vLLM engine."""
    if route.standby != "sleep" or not route.runs_vllm:
        return None
    if route.engine.get("enforce_eager"):
        return "none"
    if not route.engine.get("sleep_mode_offload_cudagraph", True):
        return "on_gpu"
    return "offloaded"


def asleep_graph_bytes(route: RouteConfig) -> int:
    """GPU memory an asleep engine of `route` keeps for its CUDA graphs (0: none there)."""
    return CUDA_GRAPH_BYTES if cudagraphs_asleep(route) == "on_gpu" else 0

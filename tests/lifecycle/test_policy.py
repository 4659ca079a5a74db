"""plan_eviction as a table: the candidates and a GPU reading in, the names to unload out."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from llmhost.gpu.monitor import GpuMemory
from llmhost.lifecycle.policy import Candidate, Policy, plan_eviction
from llmhost.units import GIB

TOTAL = 16 * GIB


def idle(name: str, last_used: float, gib: float | None = 4) -> Candidate:
    return Candidate(name, False, last_used, None if gib is None else int(gib * GIB))


def busy(name: str, last_used: float, gib: float | None = 4) -> Candidate:
    return Candidate(name, True, last_used, None if gib is None else int(gib * GIB))


def free(gib: float) -> GpuMemory:
    return GpuMemory(total_bytes=TOTAL, free_bytes=int(gib * GIB))


@dataclass(frozen=True)
class Case:
    name: str
    policy: Policy
    need_gib: float | None
    residents: tuple[Candidate, ...]
    gpu: GpuMemory | None
    evict: tuple[str, ...]
    fits: bool = True
    reason: str = ""  # a part of the plan's reason


CASES = [
    Case("exclusive, nothing resident", "exclusive", 4, (), free(16), ()),
    Case(
        "exclusive evicts every other model, idle first, least recently used first",
        "exclusive",
        4,
        (busy("old-busy", 1), idle("recent", 9), idle("old", 2)),
        free(4),
        ("old", "recent", "old-busy"),
        reason="one model at a time",
    ),
    Case(
        "exclusive ignores the target itself", "exclusive", 4, (idle("t", 1), idle("a", 2)), free(8), ("a",)
    ),
    Case("exclusive without NVML still evicts", "exclusive", None, (idle("a", 1),), None, ("a",)),
    Case(
        "fit without NVML keeps every resident model",
        "fit",
        4,
        (idle("a", 1), busy("b", 2)),
        None,
        (),
        reason="no NVML",
    ),
    Case(
        "fit with an unknown need frees the whole GPU",
        "fit",
        None,
        (busy("b", 1), idle("a", 5)),
        free(8),
        ("a", "b"),
        reason="unknown",
    ),
    Case(
        "fit: fits beside the residents", "fit", 4, (idle("a", 1), idle("b", 2)), free(8), (), reason="fits"
    ),
    Case("fit: exactly what is free fits", "fit", 8, (idle("a", 1),), free(8), ()),
    Case(
        "fit evicts the least recently used idle model until it fits",
        "fit",
        6,
        (idle("recent", 9), idle("old", 2), idle("middle", 5)),
        free(2),
        ("old",),
        reason="evicting old",
    ),
    Case(
        "fit evicts idle models before busy ones, however old",
        "fit",
        6,
        (busy("oldest", 0), idle("recent", 9)),
        free(2),
        ("recent",),
    ),
    Case(
        "fit goes on to busy models when idle ones are not enough",
        "fit",
        10,
        (busy("b", 0), idle("a", 9)),
        free(2),
        ("a", "b"),
    ),
    Case(
        "fit counts a victim of unknown size as freeing nothing",
        "fit",
        6,
        (idle("unknown", 1, gib=None), idle("known", 2)),
        free(2),
        ("unknown", "known"),
    ),
    Case(
        "fit refuses a need larger than the GPU",
        "fit",
        20,
        (idle("a", 1),),
        free(12),
        (),
        fits=False,
        reason="in total",
    ),
    Case(
        "fit refuses what even an empty GPU (less other processes) cannot hold",
        "fit",
        14,
        (idle("a", 1), busy("b", 2)),
        free(2),
        (),
        fits=False,
        reason="other processes",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan_eviction(case: Case) -> None:
    need = None if case.need_gib is None else int(case.need_gib * GIB)
    plan = plan_eviction(case.policy, "t", need, case.residents, case.gpu)
    assert plan.evict == case.evict
    assert plan.fits is case.fits
    assert case.reason in plan.reason


def test_plan_eviction_is_a_pure_decision(caplog: pytest.LogCaptureFixture) -> None:
    """It must not log or change its inputs: the scheduler logs what it carries out."""
    residents = [idle("a", 1), busy("b", 2)]
    before = list(residents)
    with caplog.at_level(logging.DEBUG):
        first = plan_eviction("fit", "t", 12 * GIB, residents, free(4))
        second = plan_eviction("fit", "t", 12 * GIB, residents, free(4))
    assert first == second
    assert residents == before
    assert caplog.records == []


# ---- warm standby ----------------------------------------------------------------------


def asleep(name: str, last_used: float, gib: float = 0.25) -> Candidate:
    return Candidate(name, False, last_used, int(gib * GIB), asleep=True)


def test_exclusive_keeps_asleep_models_asleep() -> None:
    plan = plan_eviction("exclusive", "t", None, [asleep("s", 1), idle("a", 2)], free(10))
    assert plan.evict == ("a",)


def test_fit_counts_asleep_memory_as_free_and_shuts_them_down_last() -> None:
    # 6 GiB free; t needs 9: the awake model goes first, then the least recent asleep one.
    residents = [asleep("s2", 5), asleep("s1", 1), idle("a", 9, gib=2)]
    plan = plan_eviction("fit", "t", 9 * GIB, residents, free(6.8))
    assert plan.evict == ("a", "s1") and plan.fits
    assert plan_eviction("fit", "t", 8 * GIB, residents, free(6.8)).evict == ("a",)
    assert plan_eviction("fit", "t", None, residents, free(6.8)).evict == ("a",)


# ---- resident routes (resident = true: pinned) ------------------------------------------


def pinned(name: str, last_used: float, gib: float = 1, *, busy: bool = False) -> Candidate:
    return Candidate(name, busy, last_used, int(gib * GIB), pinned=True)


@dataclass(frozen=True)
class PinnedCase:
    name: str
    policy: Policy
    target_pinned: bool
    need_gib: float | None
    residents: tuple[Candidate, ...]
    gpu: GpuMemory | None
    evict: tuple[str, ...]
    fits: bool = True
    reason: str = ""


PINNED_CASES = [
    PinnedCase(
        "exclusive evicts every other model but the resident ones, however idle or old",
        "exclusive",
        False,
        None,
        (pinned("e", 0), idle("a", 5), busy("b", 1)),
        free(4),
        ("a", "b"),
        reason="one model at a time beside resident e",
    ),
    PinnedCase(
        "exclusive without NVML still keeps the resident ones",
        "exclusive",
        False,
        None,
        (pinned("e", 0), pinned("r", 1), idle("a", 5)),
        None,
        ("a",),
    ),
    PinnedCase(
        "a resident target that fits evicts nothing under exclusive",
        "exclusive",
        True,
        2,
        (idle("a", 5, gib=10),),
        free(4),
        (),
        reason="resident: t needs 2.0 GiB, fits",
    ),
    PinnedCase(
        "a resident target without NVML keeps everything (the others left it room)",
        "exclusive",
        True,
        2,
        (idle("a", 5),),
        None,
        (),
    ),
    PinnedCase(
        "a resident target that does not fit evicts the others, never a resident one",
        "exclusive",
        True,
        6,
        (pinned("r", 0, gib=3), idle("recent", 9, gib=4), idle("old", 2, gib=4)),
        free(2),
        ("old",),
        reason="evicting old",
    ),
    PinnedCase(
        "a resident target of unknown need frees the GPU but for the resident ones",
        "exclusive",
        True,
        None,
        (pinned("r", 0), idle("a", 9)),
        free(2),
        ("a",),
        reason="unknown",
    ),
    PinnedCase(
        "a resident target refused when only the resident ones would free enough",
        "exclusive",
        True,
        6,
        (pinned("r", 0, gib=8), idle("a", 9, gib=1)),
        free(2),
        (),
        fits=False,
        reason="only 3.0 GiB would be free with every other model but the resident routes (r) unloaded",
    ),
    PinnedCase(
        "fit evicts the others least recently used first, never a resident one",
        "fit",
        False,
        6,
        (pinned("e", 0, gib=4), idle("a", 5, gib=4)),
        free(2),
        ("a",),
    ),
    PinnedCase(
        "fit with an unknown need frees the GPU but for the resident ones",
        "fit",
        False,
        None,
        (pinned("e", 0), busy("b", 1), idle("a", 5)),
        free(8),
        ("a", "b"),
    ),
    PinnedCase(
        "fit refuses a need only the resident ones' memory would meet, naming them",
        "fit",
        False,
        10,
        (pinned("e", 0, gib=6, busy=True), idle("a", 5, gib=2)),
        free(6),
        (),
        fits=False,
        reason="but the resident routes (e) unloaded (they and other processes use the rest)",
    ),
]


@pytest.mark.parametrize("case", PINNED_CASES, ids=[c.name for c in PINNED_CASES])
def test_plan_eviction_never_picks_a_resident_route(case: PinnedCase) -> None:
    need = None if case.need_gib is None else int(case.need_gib * GIB)
    plan = plan_eviction(case.policy, "t", need, case.residents, case.gpu, pinned=case.target_pinned)
    assert plan.evict == case.evict
    assert plan.fits is case.fits
    assert case.reason in plan.reason, plan.reason
    assert not {r.name for r in case.residents if r.pinned} & set(plan.evict)

"""A model's bookkeeping (llmhost.lifecycle.slot): the refusals it counts and the
`/stats` entry it gives, whatever its backend kept of its start."""

from __future__ import annotations

from typing import Any

from llmhost.backends.base import NO_START_STATS
from llmhost.lifecycle.slot import REFUSAL_REASONS, Slot
from llmhost.lifecycle.state import ModelState
from tests.fakes import catalog


def _slot(**route: object) -> Slot:
    return Slot(catalog("exclusive", ("a",), every_route=route or None).routes["a"])


def test_refusals_are_counted_by_reason_and_every_reason_shows() -> None:
    slot = _slot()
    slot.count_refused("overloaded")
    slot.count_refused("wait_timeout", 3)
    slot.count_refused("load_failed", 0)  # nobody waited: nothing refused
    slot.count_refused("queue_full", 2)  # a reason given outside the manager
    refused = slot.stats(0.0)["refused"]
    assert list(refused)[: len(REFUSAL_REASONS)] == list(REFUSAL_REASONS)
    assert refused["overloaded"] == 1 and refused["wait_timeout"] == 3
    assert refused["load_failed"] == 0 and refused["queue_full"] == 2
    assert sum(refused.values()) == 6


def test_a_stopped_model_reports_nothing_it_does_not_know() -> None:
    stats = _slot().stats(10.0)
    assert stats["route"] == "a" and stats["state"] == "stopped"
    assert stats["loading_seconds"] is None and stats["last_hit"] is None
    assert stats["memory_bytes"] is None and stats["in_flight"] == 0 and stats["waiting"] == 0
    for key, value in NO_START_STATS.items():  # no start report: its keys are there, None
        assert stats[key] is value is None
    assert (stats["standby"], stats["standby_reason"], stats["sleep_level"]) == ("off", None, None)


class _Report:
    """A start report as a backend keeps one (llmhost.backends.base.StartReport)."""

    def stats(self) -> dict[str, Any]:
        return {**NO_START_STATS, "max_model_len": 4096, "max_model_len_reason": "fitted"}


def test_the_last_start_report_shows_in_the_stats() -> None:
    slot = _slot()
    slot.start_report = _Report()
    stats = slot.stats(0.0)
    assert stats["max_model_len"] == 4096 and stats["max_model_len_reason"] == "fitted"
    assert stats["cold_start_phases"] is None


def test_loading_seconds_count_from_the_load_start_and_waiting_counts_preparing_requests() -> None:
    slot = _slot()
    slot.to(ModelState.LOADING)
    slot.load_started = 4.0
    slot.preparing = 2
    stats = slot.stats(10.5)
    assert stats["state"] == "loading" and stats["loading_seconds"] == 6.5 and stats["waiting"] == 2


def test_the_standby_setting_as_it_stands() -> None:
    slot = _slot(standby="sleep", sleep_level=1)
    checking = slot.stats(0.0, standby_known=False)
    assert checking["standby"] == "checking" and checking["sleep_level"] == 1
    assert slot.stats(0.0, standby_unavailable="no sleep mode")["standby_reason"] == "no sleep mode"
    assert slot.stats(0.0)["standby"] == "on"
    slot.standby.disabled = "2 failed sleeps or wakes"
    assert (slot.stats(0.0)["standby"], slot.stats(0.0)["standby_reason"]) == (
        "disabled",
        "2 failed sleeps or wakes",
    )

"""Verdicts and groups (llmhost.estimate.result): how an estimate compares with the card,
and which routes fit on it together."""

from __future__ import annotations

from llmhost.estimate import resident_together, verdict
from llmhost.units import GIB


def test_verdict_thresholds() -> None:
    card = 16 * GIB
    assert verdict(int(0.9 * card), card) == "fits"
    assert verdict(int(0.9 * card) + 1, card) == "tight"
    assert verdict(card, card) == "tight"
    assert verdict(card + 1, card) == "does not fit"
    assert verdict(None, card) == "unknown"


def test_resident_together_lists_the_largest_groups_that_fit() -> None:
    needs: dict[str, int | None] = {"a": 6 * GIB, "b": 7 * GIB, "c": 8 * GIB, "d": None}
    # 16 GiB card: "fits" means at most 14.4 GiB together.
    assert resident_together(needs, 16 * GIB) == [("a", "b"), ("a", "c")]
    assert resident_together(needs, 24 * GIB) == [("a", "b", "c")]
    assert resident_together({"a": 10 * GIB, "b": 10 * GIB}, 16 * GIB) == []

"""The transition table: every allowed move, and the illegal ones refused."""

from __future__ import annotations

import itertools

import pytest

from llmhost.lifecycle.state import IllegalTransition, ModelState, check_transition, is_resident

S = ModelState

# The whole table, as the scheduler uses it (llmhost.lifecycle.transitions and scheduler).
ALLOWED = {
    (S.STOPPED, S.LOADING),  # a request wants it
    (S.STOPPED, S.FAILED),  # the pre-flight check refused it
    (S.LOADING, S.READY),  # the engine started
    (S.LOADING, S.FAILED),  # too little memory, the engine raised, or the load was abandoned
    (S.READY, S.UNLOADING),  # evicted: idle, making room, reloaded, shutting down
    (S.UNLOADING, S.STOPPED),  # the engine is shut down
    (S.FAILED, S.LOADING),  # the retry after the backoff
    (S.FAILED, S.FAILED),  # the pre-flight check refused the retry
}


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED), ids=lambda s: s.value)
def test_allowed_moves(old: ModelState, new: ModelState) -> None:
    assert check_transition(old, new) is new


ILLEGAL = sorted(set(itertools.product(ModelState, ModelState)) - ALLOWED)


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=lambda s: s.value)
def test_every_other_move_is_refused(old: ModelState, new: ModelState) -> None:
    with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
        check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.READY, S.STOPPED),  # an unload always passes through unloading
        (S.LOADING, S.UNLOADING),  # a load in progress is abandoned (failed), never unloaded
        (S.UNLOADING, S.READY),  # an unload is never undone
        (S.FAILED, S.STOPPED),  # a failed model holds nothing to unload
        (S.STOPPED, S.READY),  # ready only through a load
    ],
    ids=lambda s: s.value,
)
def test_notable_illegal_moves(old: ModelState, new: ModelState) -> None:
    assert (old, new) not in ALLOWED
    with pytest.raises(IllegalTransition):
        check_transition(old, new)


def test_resident_states_are_those_that_hold_gpu_memory() -> None:
    assert {s for s in ModelState if is_resident(s)} == {S.LOADING, S.READY, S.UNLOADING}

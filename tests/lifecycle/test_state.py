"""The transition table: every allowed move, and the illegal ones refused."""

from __future__ import annotations

import itertools

import pytest

from llmhost.lifecycle.state import IllegalTransition, ModelState, check_transition, has_engine, uses_gpu

S = ModelState

# The whole table, as the scheduler uses it (llmhost.lifecycle.loading, unloading, sleeping, failing).
ALLOWED = {
    (S.STOPPED, S.LOADING),  # a request wants it
    (S.STOPPED, S.FAILED),  # the pre-flight check refused it
    (S.LOADING, S.READY),  # the engine started
    (S.LOADING, S.FAILED),  # too little memory, or the engine raised
    (S.LOADING, S.UNLOADING),  # abandoned: start timeout, stop, reload, unload request
    (S.READY, S.UNLOADING),  # evicted: idle, making room, reloaded, shutting down
    (S.UNLOADING, S.STOPPED),  # the engine is shut down
    (S.UNLOADING, S.FAILED),  # the abandoned load it took back had failed (start timeout)
    (S.FAILED, S.LOADING),  # the retry after the backoff
    (S.FAILED, S.FAILED),  # the pre-flight check refused the retry
    # Warm standby (docs/standby.md)
    (S.READY, S.SLEEPING),  # evicted to make room, standby on, RAM allowing
    (S.SLEEPING, S.ASLEEP),  # the GPU memory is given back
    (S.SLEEPING, S.UNLOADING),  # the sleep failed: shut the engine down
    (S.ASLEEP, S.WAKING),  # a request wants it
    (S.ASLEEP, S.UNLOADING),  # idle, RAM budget, reload, shutdown
    (S.WAKING, S.READY),  # awake and its probe matched
    (S.WAKING, S.UNLOADING),  # the wake failed or its probe differed: shut down, cold-load
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
        (S.LOADING, S.STOPPED),  # an abandoned load is taken back (unloading) first
        (S.UNLOADING, S.READY),  # an unload is never undone
        (S.FAILED, S.STOPPED),  # a failed model holds nothing to unload
        (S.STOPPED, S.READY),  # ready only through a load
        (S.ASLEEP, S.READY),  # never served without a wake and its probe
        (S.SLEEPING, S.READY),  # a sleep is never undone halfway
        (S.LOADING, S.SLEEPING),  # only a ready (drained) model sleeps
    ],
    ids=lambda s: s.value,
)
def test_notable_illegal_moves(old: ModelState, new: ModelState) -> None:
    assert (old, new) not in ALLOWED
    with pytest.raises(IllegalTransition):
        check_transition(old, new)


def test_resident_states_are_those_that_hold_gpu_memory() -> None:
    assert {s for s in ModelState if uses_gpu(s)} == {
        S.LOADING,
        S.READY,
        S.UNLOADING,
        S.SLEEPING,
        S.WAKING,
    }


def test_an_asleep_model_has_an_engine_but_is_not_resident() -> None:
    # The policy counts its GPU memory as free; the host's shutdown still waits for it.
    assert not uses_gpu(S.ASLEEP)
    assert {s for s in ModelState if has_engine(s)} == {s for s in ModelState if uses_gpu(s)} | {S.ASLEEP}

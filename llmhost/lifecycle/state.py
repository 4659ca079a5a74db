"""Model states and the one table of allowed transitions."""

from __future__ import annotations

from enum import Enum


class ModelState(str, Enum):
    STOPPED = "stopped"
    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"
    FAILED = "failed"


class IllegalTransition(RuntimeError):
    """A state change the table does not allow: always a bug in the scheduler."""


_ALLOWED: dict[ModelState, frozenset[ModelState]] = {
    # STOPPED -> FAILED: the pre-flight check refused the load before anything was evicted.
    ModelState.STOPPED: frozenset({ModelState.LOADING, ModelState.FAILED}),
    # LOADING -> FAILED: too little free memory, the engine raised, or the load was abandoned.
    ModelState.LOADING: frozenset({ModelState.READY, ModelState.FAILED}),
    ModelState.READY: frozenset({ModelState.UNLOADING}),
    # A backend that raises while stopping is treated as stopped (operations.stop).
    ModelState.UNLOADING: frozenset({ModelState.STOPPED}),
    # FAILED -> LOADING: the retry after retry_backoff_seconds; FAILED -> FAILED: the
    # pre-flight check refused that retry. A failed model holds no GPU memory, so it
    # never needs an unload on the way back.
    ModelState.FAILED: frozenset({ModelState.LOADING, ModelState.FAILED}),
}


def check_transition(old: ModelState, new: ModelState) -> ModelState:
    if new not in _ALLOWED[old]:
        raise IllegalTransition(f"illegal model state change {old.value} -> {new.value}")
    return new


def is_resident(state: ModelState) -> bool:
    """Whether the model holds (or is taking, or giving back) GPU memory."""
    return state in (ModelState.LOADING, ModelState.READY, ModelState.UNLOADING)

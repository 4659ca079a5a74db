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
    """A state change the table does not allow: always a bug in the manager."""


_ALLOWED: dict[ModelState, frozenset[ModelState]] = {
    # STOPPED -> FAILED: the pre-flight check refused the load before anything was evicted.
    ModelState.STOPPED: frozenset({ModelState.LOADING, ModelState.FAILED}),
    ModelState.LOADING: frozenset({ModelState.READY, ModelState.FAILED}),
    ModelState.READY: frozenset({ModelState.UNLOADING}),
    # An unload that raises still leaves the engine gone or unusable: failed, not ready.
    ModelState.UNLOADING: frozenset({ModelState.STOPPED, ModelState.FAILED}),
    ModelState.FAILED: frozenset({ModelState.LOADING, ModelState.STOPPED, ModelState.FAILED}),
}


def check_transition(old: ModelState, new: ModelState) -> ModelState:
    if new not in _ALLOWED[old]:
        raise IllegalTransition(f"illegal model state change {old.value} -> {new.value}")
    return new


def is_resident(state: ModelState) -> bool:
    """Whether the model holds (or is taking, or giving back) GPU memory."""
    return state in (ModelState.LOADING, ModelState.READY, ModelState.UNLOADING)

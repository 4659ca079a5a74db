"""Model states and the one table of allowed transitions."""

from __future__ import annotations

from enum import Enum


class ModelState(str, Enum):
    STOPPED = "stopped"
    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"
    FAILED = "failed"
    # Warm standby (docs/standby.md): the engine lives on with its GPU memory given back.
    SLEEPING = "sleeping"
    ASLEEP = "asleep"
    WAKING = "waking"


class IllegalTransition(RuntimeError):
    """A state change the table does not allow: always a bug in the scheduler."""


_ALLOWED: dict[ModelState, frozenset[ModelState]] = {
    # STOPPED -> FAILED: the pre-flight check refused the load before anything was evicted.
    ModelState.STOPPED: frozenset({ModelState.LOADING, ModelState.FAILED}),
    # LOADING -> FAILED: too little free memory, or the engine raised.
    # LOADING -> UNLOADING: the load was abandoned (the start timeout, a stop, a reload,
    # an unload request): the engine it began is stopped and its memory waited for.
    ModelState.LOADING: frozenset({ModelState.READY, ModelState.FAILED, ModelState.UNLOADING}),
    # READY -> SLEEPING: evicted to make room, with standby on (else it unloads).
    ModelState.READY: frozenset({ModelState.UNLOADING, ModelState.SLEEPING}),
    # SLEEPING -> UNLOADING: the sleep failed; an engine in an unknown state is shut down.
    ModelState.SLEEPING: frozenset({ModelState.ASLEEP, ModelState.UNLOADING}),
    # ASLEEP -> UNLOADING: idle, the RAM budget, a reload or the host's shutdown.
    ModelState.ASLEEP: frozenset({ModelState.WAKING, ModelState.UNLOADING}),
    # WAKING -> UNLOADING: the wake failed or its probe disagreed: shut down, then cold-load.
    ModelState.WAKING: frozenset({ModelState.READY, ModelState.UNLOADING}),
    # A backend that raises while stopping is treated as stopped (operations.stop).
    # UNLOADING -> FAILED: the load it took back was abandoned for a failure (the start
    # timeout), so the retry backoff applies.
    ModelState.UNLOADING: frozenset({ModelState.STOPPED, ModelState.FAILED}),
    # FAILED -> LOADING: the retry after retry_backoff_seconds; FAILED -> FAILED: the
    # pre-flight check refused that retry. A failed model holds no GPU memory, so it
    # never needs an unload on the way back.
    ModelState.FAILED: frozenset({ModelState.LOADING, ModelState.FAILED}),
}


def check_transition(old: ModelState, new: ModelState) -> ModelState:
    if new not in _ALLOWED[old]:
        raise IllegalTransition(f"illegal model state change {old.value} -> {new.value}")
    return new


def uses_gpu(state: ModelState) -> bool:
    """Whether the model holds (or is taking, or giving back) GPU memory. An asleep model
    is not: what it still holds shows in the free-memory reading taken after its sleep."""
    return state in (
        ModelState.LOADING,
        ModelState.READY,
        ModelState.UNLOADING,
        ModelState.SLEEPING,
        ModelState.WAKING,
    )


def has_engine(state: ModelState) -> bool:
    """Whether an engine exists for the model (resident or asleep): the host's shutdown
    is done when none has."""
    return uses_gpu(state) or state is ModelState.ASLEEP

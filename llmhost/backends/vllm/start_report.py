"""What an engine's own start said about it, kept per model beyond the engine's life.

A backend that knows (llmhost.backends.vllm.backend) sets `engine_start` once it has started:
the context it got and why (llmhost.backends.vllm.context_fit), and where the start's seconds
went (llmhost.backends.vllm.start_phases). The lifecycle keeps the last one per model;
`/stats` and the model list read it, without touching the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmhost.backends.base import StartReport
from llmhost.backends.vllm import start_phases
from llmhost.backends.vllm.context_fit import EngineContext, configured_length
from llmhost.backends.vllm.start_phases import Phase
from llmhost.config import RouteConfig


@dataclass(frozen=True)
class EngineStart:
    """A vLLM engine's start: the StartReport (llmhost.backends.base) the lifecycle keeps."""

    context: EngineContext | None = None
    phases: tuple[Phase, ...] = ()

    def stats(self) -> dict[str, Any]:
        """A model's `/stats` keys for this start (None where unknown)."""
        phases = start_phases.stats(self.phases) if self.phases else None
        if self.context is None:
            none = {"max_model_len": None, "max_model_len_reason": None, "max_model_len_fitted_from": None}
            return {"cold_start_phases": phases, **none}
        return {"cold_start_phases": phases, **self.context.stats()}


def served_context(route: RouteConfig, start: StartReport | None) -> dict[str, Any]:
    """The route's entry in the model list: `max_model_len` its last engine served (when
    the route's own max_model_len is still the one it started with), else the configured
    one; and why."""
    configured = configured_length(dict(route.engine))
    context = start.context if isinstance(start, EngineStart) else None
    if context is not None and context.configured == configured and context.max_model_len is not None:
        return {"max_model_len": context.max_model_len, "max_model_len_reason": context.reason}
    if configured is not None:
        return {"max_model_len": configured, "max_model_len_reason": "max_model_len in [engine]"}
    return {"max_model_len": None, "max_model_len_reason": "set by vLLM when the model first loads"}

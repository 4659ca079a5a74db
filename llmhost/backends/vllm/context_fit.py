"""Engines that fit themselves: when vLLM refuses a max_model_len its KV cache cannot hold,
start again, once, with the context fitted to the memory there is.

vLLM checks at start-up that the KV cache left after the weights and activations holds
one request of `max_model_len` tokens, and refuses otherwise
(vllm/v1/core/kv_cache_utils.py, `_check_enough_kv_cache_memory`):

    To serve at least one request with the model's max seq len (32768), (1.75 GiB KV
    cache is needed, which is larger than the available KV cache memory (1.02 GiB).
    Based on the available memory, the estimated maximum model length is 19056. ...

On the user's card the memory left is only known to an estimate (llmhost.estimate), so
the host does not fail the route on it: it retries once with `max_model_len` set to the
length vLLM printed, less `SLACK` (the retry profiles its memory again and may find a few
MiB less), rounded down to whole 16-token blocks and capped at the configured value.
vLLM's own `max_model_len = -1` ("auto", `_auto_fit_max_model_len`) would fit as well,
but up to the model's full context rather than the configured one, which the user chose
as a limit. The log, /stats and the route's entry in /v1/models then say the context
the engine got and why (`EngineContext`).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmhost.backends.vllm.failure import root_cause
from llmhost.backends.vllm.processes import EngineProcesses
from llmhost.config import RouteConfig
from llmhost.estimate.figures import BLOCK_TOKENS, SLACK
from llmhost.gpu.monitor import open_monitor
from llmhost.units import GIB

log = logging.getLogger("llmhost.vllm")

# vLLM's refusal, with the length it refused, the KV cache it needed and had (GiB, as it
# rounds them) and, when it could tell, the longest context that fits.
_REFUSAL = re.compile(
    r"To serve at least one request with the model's max seq len \((?P<refused>\d+)\), "
    r"\((?P<needed>[\d.]+) GiB KV cache is needed, which is larger than the available KV "
    r"cache memory \((?P<available>[\d.]+) GiB\)\.(?: Based on the available memory, the "
    r"estimated maximum model length is (?P<estimate>\d+)\.)?"
)
# How long the refused engine's processes get to exit before the retry (they were
# already shutting down when vLLM raised), and how long their GPU memory gets to show as
# free again (drivers report it late, under WSL2 especially).
EXIT_SECONDS = 30.0
SETTLE_SECONDS = 10.0


@dataclass(frozen=True)
class Refusal:
    """vLLM refused `refused` tokens; `estimate` is the longest context it said fits."""

    refused: int
    needed_gib: float
    available_gib: float
    estimate: int | None


@dataclass(frozen=True)
class EngineContext:
    """The context an engine got, and why."""

    max_model_len: int | None  # what the engine serves (None: unknown)
    configured: int | None  # [engine] max_model_len (None: vLLM's default, or "auto")
    reason: str
    fitted_from: int | None = None  # the length vLLM refused, when the host fitted it down

    def stats(self) -> dict[str, Any]:
        return {
            "max_model_len": self.max_model_len,
            "max_model_len_reason": self.reason,
            "max_model_len_fitted_from": self.fitted_from,
        }


def parse_refusal(text: str) -> Refusal | None:
    """vLLM's refusal for a max_model_len its KV cache cannot hold, read from its message."""
    match = _REFUSAL.search(text)
    if match is None:
        return None
    estimate = match.group("estimate")
    return Refusal(
        refused=int(match.group("refused")),
        needed_gib=float(match.group("needed")),
        available_gib=float(match.group("available")),
        estimate=int(estimate) if estimate else None,
    )


def fitted_length(refusal: Refusal, configured: int | None) -> int | None:
    """The max_model_len to retry with: vLLM's estimate less the slack, in whole blocks,
    at most the configured value (or the refused one). None: nothing worth serving fits."""
    if refusal.estimate is None:
        return None
    cap = min(configured or refusal.refused, refusal.refused)
    tokens = math.floor(refusal.estimate * (1 - SLACK) / BLOCK_TOKENS) * BLOCK_TOKENS
    tokens = min(tokens, cap)
    return tokens if tokens >= BLOCK_TOKENS else None


def configured_length(engine: dict[str, Any]) -> int | None:
    """[engine] max_model_len as vLLM reads it ("32k" too); None when unset or "auto"."""
    from llmhost.estimate.llm import max_model_len

    return max_model_len({}, engine)


def create_fitted(
    create: Callable[[dict[str, Any]], Any],
    engine: dict[str, Any],
    route: RouteConfig,
    *,
    failure_log: Path | None,
    procs: EngineProcesses | None,
    abandoned: Callable[[], bool],
) -> tuple[Any, EngineContext]:
    """`create(engine)`; when vLLM refuses the context, once more with it fitted (blocking:
    runs in the start's worker thread). The engine, and the context it got and why."""
    configured = configured_length(engine)
    try:
        client = create(engine)
    except Exception as exc:
        refusal = None if abandoned() else parse_refusal(root_cause(exc, failure_log))
        fitted = fitted_length(refusal, configured) if refusal is not None else None
        if refusal is None or fitted is None:
            raise
        why = (
            f"vLLM refused {refusal.refused} tokens: one request of them needs {refusal.needed_gib:g} GiB "
            f"of KV cache, more than the {refusal.available_gib:g} GiB it had for it; it estimated "
            f"{refusal.estimate} tokens fit"
        )
        log.warning("%s: %s; starting again with max_model_len %d", route.primary_id, why, fitted)
        _let_go(procs)
        if failure_log is not None:
            failure_log.unlink(missing_ok=True)  # the retry's own errors, if it fails too
        client = create({**engine, "max_model_len": fitted})
        got = _served_length(client)
        context = EngineContext(
            got, configured, f"fitted down from {refusal.refused}: {why}", refusal.refused
        )
        log.warning(
            "%s serves max_model_len %s instead of %d: the KV cache left after the weights holds no more "
            "(raise memory_gib, lower the weights' precision or set a smaller max_model_len to choose)",
            route.primary_id,
            got,
            refusal.refused,
        )
        return client, context
    return client, EngineContext(_served_length(client), configured, _unfitted_reason(engine, configured))


def _unfitted_reason(engine: dict[str, Any], configured: int | None) -> str:
    if configured is not None:
        return "max_model_len in [engine]"
    if engine.get("max_model_len") is not None:
        return "auto: vLLM fitted it to the memory it had"
    return "vLLM's default for the model (its config.json)"


def _served_length(client: Any) -> int | None:
    try:
        return int(client.model_config.max_model_len)
    except (AttributeError, TypeError, ValueError):
        return None


def _let_go(procs: EngineProcesses | None) -> None:
    """Wait until the refused engine's processes are gone and, with NVML, until the GPU
    memory they held shows as free (no longer growing): the retry's own memory check
    needs it back."""
    if procs is not None:
        procs.wait_gone(EXIT_SECONDS)
    gpu_log = logging.getLogger("llmhost.gpu")
    level = gpu_log.level
    gpu_log.setLevel(logging.ERROR)  # without NVML there is nothing to wait for, and no news
    try:
        monitor = open_monitor()
    finally:
        gpu_log.setLevel(level)
    try:
        deadline = time.monotonic() + SETTLE_SECONDS
        most, steady = -1, 0
        while time.monotonic() < deadline and steady < 4:
            reading = monitor.memory()
            if reading is None:
                return
            steady = steady + 1 if reading.free_bytes <= most + GIB // 64 else 0
            most = max(most, reading.free_bytes)
            time.sleep(0.25)
    finally:
        monitor.close()

"""Comparison 1, serving overhead: streaming chat through a llmhost route vs vLLM's own
OpenAI server, same model, same engine arguments, same requests.

Both servers are up at once (only the one being measured has work) and take turns batch
by batch: for each concurrency, `batches` closed-loop batches per side, alternating which
side goes first. One batch sends `requests` streaming chats, `concurrency` at a time
(each client sends its next request when its last one ended). Each batch is one sample:
requests/s and output tokens/s over its wall time, time to first token p50/p95 over its
requests. Short batches, many of them, interleaved: on a small CPU machine the
throughput of vLLM's engine swings from batch to batch (see docs/performance.md), and
pairing batches close in time keeps drift in the machine's load off the ratio. Between
two batches the runner pauses `PAUSE_S`: after its last request an idle vLLM engine's
processes keep polling their shared-memory queues for a second (vLLM's SpinCondition,
`busy_loop_s=1`), which would take CPU from the next batch, on the other server.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from bench.common import log
from bench.loadgen import run_load

PAUSE_S = 1.2


@dataclass(frozen=True)
class Load:
    concurrency: Sequence[int]
    requests: Mapping[int, int]  # concurrency -> requests per batch
    batches: Mapping[int, int]  # concurrency -> batches per side and round
    warmup: int
    max_tokens: int


def full_load(max_tokens: int) -> Load:
    return Load((1, 8, 32), {1: 16, 8: 64, 32: 128}, {1: 2, 8: 4, 32: 4}, warmup=32, max_tokens=max_tokens)


def quick_load(max_tokens: int) -> Load:
    return Load((1, 8, 32), {1: 8, 8: 32, 32: 64}, {1: 1, 8: 2, 32: 2}, warmup=16, max_tokens=max_tokens)


def chat_url(base_url: str, route: str | None) -> str:
    """llmhost: the route's own path; vLLM's server: /v1."""
    return f"{base_url}/{route}/v1/chat/completions" if route else f"{base_url}/v1/chat/completions"


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def batch(url: str, pid: int, model: str, concurrency: int, requests: int, max_tokens: int) -> dict[str, Any]:
    """One batch; also the CPU time the server's own process (HTTP, OpenAI layer, the
    engine client; not the engine's processes) spent per request."""
    cpu_before = _cpu_seconds(pid)
    result = run_load(url, model, concurrency, requests, max_tokens)
    cpu = _cpu_seconds(pid) - cpu_before
    metrics: dict[str, Any] = dict(result.metrics())
    metrics["server_cpu_ms_per_request"] = 1000.0 * cpu / max(1, len(result.ok))
    metrics["output_tokens_per_request"] = sorted({r.output_tokens for r in result.ok})
    if result.errors:
        metrics["first_error"] = result.errors[0]
    return metrics


def measure(
    sides: Mapping[str, tuple[str, int]], model: str, load: Load, first: int = 0
) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """One round: `sides` maps a side's name to its chat URL and server process id.
    Returns, per side and concurrency, the metrics of each batch."""
    names = list(sides)
    for name in names:
        time.sleep(PAUSE_S)
        warm = run_load(sides[name][0], model, 8, load.warmup, load.max_tokens)
        if warm.errors:
            raise RuntimeError(f"{name}: warm-up failed: {warm.errors[0]}")
    out: dict[str, dict[int, list[dict[str, Any]]]] = {name: {} for name in names}
    turn = first
    for concurrency in load.concurrency:
        for _ in range(load.batches[concurrency]):
            order = names if turn % 2 == 0 else names[::-1]
            turn += 1
            for name in order:
                time.sleep(PAUSE_S)
                url, pid = sides[name]
                metrics = batch(url, pid, model, concurrency, load.requests[concurrency], load.max_tokens)
                out[name].setdefault(concurrency, []).append(metrics)
        for name in names:
            runs = out[name][concurrency]
            errors = sum(int(m["errors"]) for m in runs)
            rates = " ".join(f"{m['requests_per_s']:.0f}" for m in runs)
            ttft = " ".join(f"{m['ttft_p50_s'] * 1000:.0f}" for m in runs)
            log(f"  {name:8s} c={concurrency:<3d} req/s {rates:24s} TTFT p50 ms {ttft:24s} errors {errors}")
    return out

"""A small async load generator for OpenAI streaming chat (httpx, SSE).

Each request streams (`stream: true`) with `stream_options.include_usage`, so the last
chunk carries the token counts; `ignore_eos` and a fixed `max_tokens` make both servers
generate the same number of tokens, and `temperature: 0` the same tokens.

Time to first token is measured to the first SSE chunk that carries a choice: vLLM's
chat server sends its first chunk (the assistant role) only once the engine has
produced the first token, so this is the first token's arrival as a client sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import percentile

#: Fixed prompts, used in this order by every run on both sides.
PROMPTS: tuple[str, ...] = (
    "Write a short poem about the sea.",
    "Explain what a hash map is in two sentences.",
    "def fibonacci(n: int) -> int:",
    "What is the weather usually like in Paris in spring?",
    "List three ways to speed up a Python program.",
    "Translate 'good morning, how are you?' into French.",
    "Summarise the plot of Hamlet in one paragraph.",
    "Write a SQL query that counts the users per country.",
)


#: The CPU the load generator runs on while it sends requests (None: wherever the OS
#: puts it). Set by bench.run: on a machine with few cores, a load generator that lands
#: on the core vLLM pins its worker to makes time to first token jump between two
#: values from batch to batch (see docs/performance.md).
PIN_CPU: int | None = None


@contextlib.contextmanager
def _pinned() -> Iterator[None]:
    if PIN_CPU is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {PIN_CPU})  # this thread only; started processes are unaffected
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def chat_body(model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@dataclass
class RequestResult:
    ok: bool
    ttft: float = float("nan")  # seconds from sending to the first chunk with a choice
    latency: float = float("nan")  # seconds from sending to the end of the stream
    output_tokens: int = 0
    error: str | None = None


@dataclass
class LoadResult:
    concurrency: int
    wall: float
    requests: list[RequestResult] = field(default_factory=list)

    @property
    def ok(self) -> list[RequestResult]:
        return [r for r in self.requests if r.ok]

    @property
    def errors(self) -> list[str]:
        return [r.error or "?" for r in self.requests if not r.ok]

    def metrics(self) -> dict[str, float]:
        ok = self.ok
        ttfts = [r.ttft for r in ok]
        return {
            "requests_per_s": len(ok) / self.wall if self.wall > 0 else float("nan"),
            "output_tokens_per_s": sum(r.output_tokens for r in ok) / self.wall
            if self.wall
            else float("nan"),
            "ttft_p50_s": percentile(ttfts, 50),
            "ttft_p95_s": percentile(ttfts, 95),
            "latency_p50_s": percentile([r.latency for r in ok], 50),
            "errors": float(len(self.requests) - len(ok)),
        }


async def stream_chat(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> RequestResult:
    """One streaming chat request; never raises (failures are results)."""
    started = time.perf_counter()
    ttft = float("nan")
    tokens = 0
    try:
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")[:300]
                return RequestResult(False, error=f"HTTP {response.status_code}: {text}")
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                if ttft != ttft or '"usage"' in data or '"error"' in data:  # nan: first chunk pending
                    chunk = json.loads(data)
                    if "error" in chunk:
                        return RequestResult(False, error=str(chunk["error"])[:300])
                    if ttft != ttft and chunk.get("choices"):
                        ttft = time.perf_counter() - started
                    usage = chunk.get("usage")
                    if usage:
                        tokens = int(usage.get("completion_tokens") or 0)
    except (httpx.HTTPError, ValueError) as exc:
        return RequestResult(False, error=f"{type(exc).__name__}: {exc}")
    latency = time.perf_counter() - started
    if ttft != ttft:
        return RequestResult(False, latency=latency, error="stream ended without a token")
    return RequestResult(True, ttft, latency, tokens)


def _client(concurrency: int, timeout: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout))


async def _load(
    url: str,
    model: str,
    concurrency: int,
    count: int,
    max_tokens: int,
    prompts: Sequence[str],
    timeout: float,
) -> LoadResult:
    bodies = [chat_body(model, prompts[i % len(prompts)], max_tokens) for i in range(count)]
    results: list[RequestResult] = []
    next_index = 0
    async with _client(concurrency, timeout) as client:

        async def worker() -> None:
            nonlocal next_index
            while next_index < count:
                body = bodies[next_index]
                next_index += 1
                results.append(await stream_chat(client, url, body))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return LoadResult(concurrency, wall, results)


def run_load(
    url: str,
    model: str,
    concurrency: int,
    count: int,
    max_tokens: int,
    prompts: Sequence[str] = PROMPTS,
    timeout: float = 300.0,
) -> LoadResult:
    """`count` streaming chats, `concurrency` at a time (closed loop), against `url`."""
    with _pinned():
        return asyncio.run(_load(url, model, concurrency, count, max_tokens, prompts, timeout))


def one_chat(
    url: str, model: str, max_tokens: int, prompt: str = PROMPTS[0], timeout: float = 600.0
) -> RequestResult:
    """A single streaming chat: the first request of a cold start or a swap."""

    async def go() -> RequestResult:
        async with _client(1, timeout) as client:
            return await stream_chat(client, url, chat_body(model, prompt, max_tokens))

    with _pinned():
        return asyncio.run(go())

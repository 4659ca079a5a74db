"""Load every route in turn through the real host and measure it: the check users run on their card.

For each route, one at a time (policy `exclusive`): a cold request through the app (the
real manager, the real backend), then a warm one, then an idle unload. Per route it
reports the load seconds, the GPU memory the model took (NVML), the first-token latency
of a warm streaming request (for an image route: the seconds for one small image; for an
embedding or rerank route: one request of eight inputs), and
the free GPU memory once the model is unloaded again. Without NVML the memory columns
say so; everything else still runs (the tiny demo models make that possible on a CPU).

Driven by `scripts/gpu_check.py --routes`; see docs/gpu.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from llmhost.backends.vllm.start_phases import Phase, summary
from llmhost.config import Catalog
from llmhost.config.route import POOLING_KINDS
from llmhost.gpu.monitor import GpuMonitor
from llmhost.server.app import create_app
from llmhost.settings import Settings
from llmhost.units import GIB

IDLE_SECONDS = 2.0  # each route idles out quickly, so the free memory after it is measured


@dataclass
class RouteResult:
    route: str
    kind: str
    model: str
    ok: bool = False
    error: str | None = None
    load_seconds: float | None = None
    first_token_seconds: float | None = None  # image routes: one image; pooling: one request
    vram_used_gib: float | None = None  # what the load took, NVML
    budget_gib: float | None = None  # what the host gave the engine (memory_gib auto/GiB)
    free_after_load_gib: float | None = None
    free_after_unload_gib: float | None = None
    # The cold start's phases in vLLM's own figures (llmhost.backends.vllm.start_phases).
    cold_start_phases: list[dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)


def check_catalog(catalog: Catalog, only: list[str] | None = None) -> Catalog:
    """The catalog as the check runs it: exclusive, quick idle unload, no prewarm."""
    routes = {n: r for n, r in catalog.routes.items() if not only or n in only}
    unknown = sorted(set(only or []) - set(catalog.routes))
    if unknown:
        raise ValueError(f"no such route(s): {', '.join(unknown)} (routes: {', '.join(catalog.routes)})")
    data = catalog.model_dump()
    data["routes"] = {n: data["routes"][n] for n in routes}
    data["host"].update(policy="exclusive", idle_seconds=IDLE_SECONDS, prewarm=())
    for route in data["routes"].values():
        route["idle_seconds"] = None
        route["resident"] = False  # measured alone, and unloaded after it like the others
    return Catalog.model_validate(data)


async def run_checks(
    settings: Settings, catalog: Catalog, gpu: GpuMonitor, *, image_size: int = 512
) -> list[RouteResult]:
    app = create_app(settings, catalog, gpu=gpu)
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    results = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://route-check", headers=headers, timeout=None
        ) as client:
            for route in catalog.routes.values():
                result = RouteResult(route.name, route.kind, route.model)
                try:
                    await _check_route(client, gpu, result, image_size)
                    result.ok = True
                except Exception as exc:  # one broken route must not hide the others
                    result.error = str(exc) or type(exc).__name__
                await _wait_stopped(client, route.name)
                memory = gpu.memory()
                if memory is not None:
                    result.free_after_unload_gib = round(memory.free_bytes / GIB, 2)
                results.append(result)
    return results


async def _check_route(
    client: httpx.AsyncClient, gpu: GpuMonitor, result: RouteResult, image_size: int
) -> None:
    if result.kind == "llm":
        await _chat(client, result.route, stream=False)  # the cold load
    elif result.kind in POOLING_KINDS:
        await _pooled(client, result.route, result.kind)
    else:
        await _image(client, result.route, image_size)
    model = await _model_stats(client, result.route)
    result.load_seconds = model["cold_start_seconds"]["last"]
    result.cold_start_phases = model.get("cold_start_phases")
    if model.get("memory_bytes") is not None:
        result.vram_used_gib = round(model["memory_bytes"] / GIB, 2)
    if model.get("memory_budget_bytes") is not None:
        result.budget_gib = round(model["memory_budget_bytes"] / GIB, 2)
    memory = gpu.memory()
    if memory is not None:
        result.free_after_load_gib = round(memory.free_bytes / GIB, 2)
    if result.kind == "llm":
        result.first_token_seconds = await _chat(client, result.route, stream=True)
    elif result.kind in POOLING_KINDS:
        result.first_token_seconds = await _pooled(client, result.route, result.kind)
    else:
        result.first_token_seconds = await _image(client, result.route, image_size)


async def _chat(client: httpx.AsyncClient, route: str, *, stream: bool) -> float:
    """Seconds until the first token (streaming) or the whole reply."""
    body = {
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 16,
        "temperature": 0,
        "stream": stream,
    }
    started = time.perf_counter()
    async with client.stream("POST", f"/{route}/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(_error_text(response))
        async for line in response.aiter_lines():
            if stream and line.startswith("data: {"):
                chunk = json.loads(line[6:])
                delta = (chunk.get("choices") or [{}])[0].get("delta", {})
                if delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning"):
                    return time.perf_counter() - started
    return time.perf_counter() - started


async def _pooled(client: httpx.AsyncClient, route: str, kind: str) -> float:
    """Seconds for one embeddings request of eight inputs, or one rerank of eight documents."""
    texts = [f"Passage {i}: the quick brown fox jumps over the lazy dog." for i in range(8)]
    body: dict[str, Any]
    if kind == "embedding":
        path, body = f"/{route}/v1/embeddings", {"input": texts}
    else:
        path, body = f"/{route}/v1/rerank", {"query": "Which passage mentions a fox?", "documents": texts}
    started = time.perf_counter()
    response = await client.post(path, json=body)
    if response.status_code != 200:
        raise RuntimeError(_error_text(response))
    return time.perf_counter() - started


async def _image(client: httpx.AsyncClient, route: str, size: int) -> float:
    started = time.perf_counter()
    body = {
        "prompt": "a red fox in the snow",
        "width": size,
        "height": size,
        "seed": 1,
        "num_inference_steps": 8,
    }
    response = await client.post(f"/{route}/generate", json=body)
    if response.status_code != 200:
        raise RuntimeError(_error_text(response))
    return time.perf_counter() - started


async def _model_stats(client: httpx.AsyncClient, route: str) -> dict[str, Any]:
    models = (await client.get("/stats")).json()["models"]
    found: dict[str, Any] = next(m for m in models if m["route"] == route)
    return found


async def _wait_stopped(client: httpx.AsyncClient, route: str) -> None:
    deadline = time.monotonic() + IDLE_SECONDS + 120
    while time.monotonic() < deadline:
        if (await _model_stats(client, route))["state"] in ("stopped", "failed"):
            return
        await asyncio.sleep(0.5)


def _error_text(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    return f"HTTP {response.status_code}: {message}"


def render(results: list[RouteResult], gpu: GpuMonitor) -> str:
    memory = gpu.memory()
    if memory is None:
        head = f"GPU: none ({gpu.unavailable_reason}); memory columns: NVML absent"
    else:
        head = f"GPU: {gpu.name}, {memory.total_bytes / GIB:.2f} GiB total"
    rows = [("ROUTE", "LOAD S", "VRAM GIB", "BUDGET", "FIRST TOKEN S", "FREE AFTER UNLOAD", "RESULT")]
    absent = "NVML absent"
    for r in results:
        rows.append(
            (
                r.route,
                _num(r.load_seconds),
                _num(r.vram_used_gib) if memory is not None else absent,
                _num(r.budget_gib) if memory is not None else absent,
                _num(r.first_token_seconds),
                _num(r.free_after_unload_gib) if memory is not None else absent,
                "ok" if r.ok else f"FAILED: {r.error}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1] for row in rows
    ]
    phases = [(r.route, r.cold_start_phases) for r in results if r.cold_start_phases]
    if phases:  # which phase to attack: vLLM's own figures per cold start
        lines += ["", "Cold start phases (vLLM's own figures; docs/gpu.md#where-a-cold-starts-seconds-go):"]
        lines += [f"  {route}: {summary(Phase(**p) for p in found)}" for route, found in phases]
    return "\n".join([head, *lines])


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def to_json(results: list[RouteResult], gpu: GpuMonitor) -> dict[str, Any]:
    memory = gpu.memory()
    return {
        "gpu": {
            "name": gpu.name,
            "total_gib": round(memory.total_bytes / GIB, 2) if memory else None,
            "unavailable_reason": gpu.unavailable_reason,
        },
        "routes": [asdict(r) for r in results],
    }

"""Admin endpoints: /healthz (no key, no model, no GPU), /routes, /stats, /metrics, reload, unload."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from llmhost.api.body import json_body, parse_body
from llmhost.api.resolve import is_image_route
from llmhost.config import ConfigError, RouteConfig
from llmhost.errors import InvalidRequest, error_body
from llmhost.gpu.monitor import GpuMonitor
from llmhost.server.host_state import host_state
from llmhost.server.metrics import render_metrics

router = APIRouter(tags=["admin"])


@router.get("/healthz", response_model=None)
async def healthz(request: Request) -> dict[str, str] | JSONResponse:
    """ok, or 503 once the host can no longer serve models (its scheduler stopped: the
    process is exiting for systemd to restart it)."""
    host = getattr(request.app.state, "host", None)
    failure = host.manager.failure if host is not None else None
    if failure is not None:
        return JSONResponse(
            error_body(f"The host cannot serve models: {failure}.", "server_error", "scheduler_stopped"),
            status_code=503,
        )
    return {"status": "ok"}


@router.get("/routes")
async def routes(request: Request) -> dict[str, Any]:
    state = host_state(request)
    state.keys.require(request)
    host = state.catalog.host
    return {
        "config": state.catalog.source,
        "policy": host.policy,
        "routes": [
            {
                "route": route.name,
                "kind": route.kind,
                "model": route.model,
                "served_names": list(route.served_names),
                "auth": route.auth_mode,
                "idle_seconds": route.idle_unload_seconds(host),  # null: never (resident)
                "state": state.manager.route_state(route.name).value,
                "paths": _paths(route),
            }
            for route in state.catalog.routes.values()
        ],
    }


def _paths(route: RouteConfig) -> list[str]:
    name = route.name
    if is_image_route(route):
        return [f"/{name}/generate", f"/{name}/healthz", f"/{name}/v1/images/generations"]
    if route.pooling:  # embedding or rerank: the endpoint its kind serves
        return [f"/{name}/v1/models", f"/{name}/v1/{'embeddings' if route.kind == 'embedding' else 'rerank'}"]
    return [f"/{name}/v1/models", f"/{name}/v1/chat/completions", f"/{name}/v1/completions"]


def gpu_stats(gpu: GpuMonitor) -> dict[str, Any]:
    memory = gpu.memory()
    if memory is None:
        return {
            "available": False,
            "name": gpu.name,
            "total_bytes": None,
            "free_bytes": None,
            "reason": gpu.unavailable_reason or "NVML reading failed",
        }
    return {
        "available": True,
        "name": gpu.name,
        "total_bytes": memory.total_bytes,
        "free_bytes": memory.free_bytes,
        "reason": None,
    }


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    state = host_state(request)
    state.keys.require(request)
    return {
        "uptime_seconds": round(time.time() - state.started_at, 1),
        "policy": state.catalog.host.policy,
        "gpu": gpu_stats(state.gpu),
        "engine_margin": state.margins.stats(state.catalog.host, state.gpu.name),
        "models": state.manager.snapshot(),
    }


@router.post("/admin/reload")
async def reload(request: Request) -> dict[str, Any]:
    """Re-read models.toml; an invalid edit is refused with its message and nothing changes."""
    from llmhost.server.reload import reload_catalog

    state = host_state(request)
    state.keys.require(request)
    try:
        changes = reload_catalog(state)
    except ConfigError as exc:
        raise InvalidRequest(f"Reload refused, the current configuration stays: {exc}") from None
    return {"status": "reloaded", **changes}


class UnloadRequest(BaseModel):
    """POST /admin/unload's body: the routes to unload (none, or no body: every route)."""

    model_config = ConfigDict(extra="forbid")
    routes: list[str] = Field(default_factory=list)


@router.post("/admin/unload")
async def unload(request: Request) -> dict[str, Any]:
    """Unload models now to free the GPU (`llmhost unload`): in-flight requests drain within
    drain_timeout_seconds, later requests load them again. The answer lists the routes
    that had an engine and the GPU memory that came back (NVML's free memory after less
    before; null without NVML, with the reason)."""
    state = host_state(request)
    state.keys.require(request)
    routes = parse_body(UnloadRequest, await json_body(request)).routes if await request.body() else []
    before = state.gpu.memory()
    unloaded = await state.manager.unload(routes)
    after = state.gpu.memory()
    freed = max(0, after.free_bytes - before.free_bytes) if before is not None and after is not None else None
    reason = None if freed is not None else (state.gpu.unavailable_reason or "NVML could not be read")
    return {"status": "unloaded", "unloaded": unloaded, "freed_bytes": freed, "freed_reason": reason}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    state = host_state(request)
    state.keys.require(request)
    collectors = [
        collector
        for backend in state.manager.loaded_backends()
        for collector in getattr(backend, "metric_collectors", ())
    ]
    body, content_type = render_metrics(state.manager.snapshot(), gpu_stats(state.gpu), collectors)
    return Response(body, media_type=content_type)

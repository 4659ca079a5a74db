"""create_app: the FastAPI application; its lifespan owns the model manager."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware

from llmhost import __version__
from llmhost.api import admin, tools
from llmhost.api.anthropic import api_router as anthropic
from llmhost.api.anthropic.errors import ANTHROPIC_HEADERS, install_error_shape
from llmhost.api.chat import api_router as chat
from llmhost.api.images import api_router as images
from llmhost.api.images.queue import ImageQueue
from llmhost.api.pooling import api_router as pooling
from llmhost.api.responses import api_router as responses
from llmhost.backends import create_backend
from llmhost.backends.base import BackendFactory
from llmhost.config import Catalog
from llmhost.errors import install_error_handlers
from llmhost.gpu.margin import EngineMargins, margin_file
from llmhost.gpu.monitor import GpuMonitor, open_monitor
from llmhost.lifecycle.context import Preflight
from llmhost.lifecycle.inputs import StandbyQuery
from llmhost.lifecycle.manager import ModelManager
from llmhost.preflight.model import config_problems
from llmhost.preflight.model import problem as preflight_problem
from llmhost.server.auth import KeyCheck
from llmhost.server.body_limit import BodyLimit
from llmhost.server.host_state import HostState
from llmhost.server.preload import Preloader
from llmhost.server.reload import install_sighup
from llmhost.settings import Settings

log = logging.getLogger("llmhost")


def create_app(
    settings: Settings,
    catalog: Catalog,
    *,
    backend_factory: BackendFactory = create_backend,
    gpu: GpuMonitor | None = None,
    preflight: Preflight | None = preflight_problem,
    preload: bool = True,
    standby_query: StandbyQuery | None = None,
) -> FastAPI:
    """The app for one validated catalog (models.toml with the environment applied)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.export_hub_token()
        monitor = gpu if gpu is not None else open_monitor()
        preloader = Preloader({route.kind for route in catalog.routes.values()} if preload else ())
        check = standby_query if standby_query is not None else _sleep_mode_query
        margins = EngineMargins(margin_file(settings.weights_cache()))  # kept with the host's cache
        manager = ModelManager(
            catalog,
            backend_factory,
            monitor,
            preflight=preflight,
            standby_query=check,
            standby_after=preloader.settled,
            margins=margins,
            on_fatal=lambda reason: _scheduler_died(app, reason),
        )
        app.state.host = HostState(
            settings=settings,
            manager=manager,
            gpu=monitor,
            keys=KeyCheck(settings.api_key),
            started_at=time.time(),
            preload=preloader,
            margins=margins,
        )
        app.state.image_queue = ImageQueue()
        manager.start()
        manager.prewarm(catalog.host.prewarm)
        install_sighup(app.state.host)
        preloader.start()  # the engine libraries, in the background: no request pays for them
        if preflight is not None:
            for problem in config_problems(catalog):  # a broken route never stops the others
                log.warning("%s: requests for it fail until that is fixed", problem)
        log.info(
            "serving %d routes from %s (policy %s)", len(catalog.routes), catalog.source, catalog.host.policy
        )
        try:
            yield
        finally:
            log.info("shutting down: draining requests and unloading models")
            await manager.close()
            monitor.close()

    app = FastAPI(
        title="llmhost",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the key
    )
    install_error_handlers(app)
    install_error_shape(app)  # Anthropic's shape on its paths, for errors before any handler
    app.add_middleware(BodyLimit, max_bytes=catalog.host.max_body_bytes)
    if catalog.host.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(catalog.host.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            # Anthropic's clients send the key as x-api-key, and their own headers beside it.
            allow_headers=["Authorization", "Content-Type", *ANTHROPIC_HEADERS],
        )
    app.include_router(admin.router)
    app.add_api_route("/openapi.json", _openapi, methods=["GET"], include_in_schema=False)
    app.include_router(chat.router)
    app.include_router(responses.router)
    app.include_router(anthropic.router)
    app.include_router(images.router)
    app.include_router(pooling.router)
    app.include_router(tools.router)
    return app


async def _openapi(request: Request) -> dict[str, Any]:
    """The API schema (for OpenAPI tool servers, e.g. Open WebUI's), behind the key."""
    request.app.state.host.keys.require(request)
    schema: dict[str, Any] = request.app.openapi()
    return schema


# The exit status of a host whose model scheduler died (sysexits' EX_SOFTWARE): not 0, so
# systemd's Restart=on-failure starts it again, and not 2 (RestartPreventExitStatus).
EXIT_SCHEDULER_STOPPED = 70


def _scheduler_died(app: FastAPI, reason: str) -> None:
    """No model can load or unload any more: /healthz answers 503 (llmhost.api.admin) and
    the server is told to stop, so the process exits non-zero and systemd restarts it.
    `llmhost serve` sets app.state.stop_server; in tests and embedders it may be absent."""
    log.critical(
        "%s: stopping the host (exit status %d) so that it is restarted", reason, EXIT_SCHEDULER_STOPPED
    )
    stop = getattr(app.state, "stop_server", None)
    if stop is not None:
        stop()


def exit_status(app: FastAPI) -> int | None:
    """The exit status the host must end with after serving `app` (None: a normal exit)."""
    host = getattr(app.state, "host", None)
    if host is not None and host.manager.failure is not None:
        return EXIT_SCHEDULER_STOPPED
    return None


def _sleep_mode_query() -> str | None:
    """vLLM's answer on sleep mode (llmhost.backends.vllm.standby); the manager asks it once the
    preload's imports are done (it imports vLLM's platform detection)."""
    from llmhost.backends.vllm.standby import sleep_mode_problem

    return sleep_mode_problem()

"""Running the real app in-process for tests: lifespan entered, httpx client over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from llmhost.app import create_app
from llmhost.backends.base import BackendFactory
from llmhost.config import Catalog
from llmhost.gpu import GpuMonitor, NullMonitor
from llmhost.settings import Settings


def make_app(
    catalog: Catalog,
    *,
    api_key: str | None = None,
    factory: BackendFactory | None = None,
    gpu: GpuMonitor | None = None,
) -> FastAPI:
    settings = Settings(_env_file=None, vllm_api_key=api_key)  # type: ignore[call-arg]
    kwargs = {"backend_factory": factory} if factory is not None else {}
    return create_app(settings, catalog, gpu=gpu or NullMonitor("no GPU in tests"), **kwargs)


@asynccontextmanager
async def running(app: FastAPI, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://llmhost", headers=headers, timeout=120
        ) as client:
            yield client

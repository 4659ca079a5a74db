"""Running the real app in-process for tests: lifespan entered, httpx client over ASGI."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

import httpx
from fastapi import FastAPI

from llmhost.backends.base import BackendFactory
from llmhost.config import Catalog
from llmhost.config.text import toml_assignments, toml_table
from llmhost.gpu.monitor import GpuMonitor, NullMonitor
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.state import ModelState
from llmhost.server.app import create_app
from llmhost.settings import Settings

T = TypeVar("T")


def make_app(
    catalog: Catalog,
    *,
    api_key: str | None = None,
    factory: BackendFactory | None = None,
    gpu: GpuMonitor | None = None,
) -> FastAPI:
    settings = Settings(_env_file=None, vllm_api_key=api_key)
    if factory is None:
        return create_app(settings, catalog, gpu=gpu or NullMonitor("no GPU in tests"))
    # Fake backends stand for models that exist nowhere: no pre-flight look for them;
    # and they sleep anywhere (tests.fakes), so standby is available to them.
    return create_app(
        settings,
        catalog,
        gpu=gpu or NullMonitor("no GPU in tests"),
        backend_factory=factory,
        preflight=None,
        standby_query=lambda: None,
    )


def envelope(body: Any) -> dict[str, Any]:
    """The error of OpenAI's envelope `{"error": {"message", "type", "param", "code"}}`, after
    checking that `body` is exactly that shape."""
    assert isinstance(body, dict) and set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


@asynccontextmanager
async def running(app: FastAPI, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://llmhost", headers=headers, timeout=120
        ) as client:
            yield client


class ServerThread:
    """The app served by uvicorn on a free loopback port, in a background thread.

    Integration tests need a real socket: streaming, client disconnects and the
    `openai` SDK behave as they do against a deployed host.
    """

    def __init__(self, app: FastAPI) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=30
        )
        self.server = uvicorn.Server(config)
        self.app = app
        # Set when the server listens or its thread ends (a failed start-up): uvicorn only
        # sets a flag, so the thread announces it once `run` is past its start-up.
        self._up = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="uvicorn-test", daemon=True)

    def _serve(self) -> None:
        startup = self.server.startup

        async def announced(*args: Any, **kwargs: Any) -> None:
            try:
                await startup(*args, **kwargs)
            finally:
                self._up.set()

        self.server.startup = announced  # type: ignore[method-assign]
        try:
            self.server.run()
        finally:
            self._up.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._up.wait(30) or not self.server.started:
            raise RuntimeError("test server did not start")
        return self

    def run_soon(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `work` on the server's event loop (where its manager runs), from the test's
        thread; the future gives its result."""
        loop = self.server.servers[0].get_loop()  # asyncio's Server knows the loop it serves on
        return asyncio.run_coroutine_threadsafe(work, loop)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=120)


def engine_table(args: dict[str, object]) -> str:
    """Engine arguments as the body of a [routes.X.engine] table."""
    return "\n".join(toml_assignments(args))


def tiny_llm_route(name: str, model: object, served: str, *, serving: str = "", extra: str = "") -> str:
    """A [routes.NAME] table for a tiny local LLM, with the engine arguments that run on CPU.

    `serving` is the body of [routes.NAME.serving]; `extra` goes into [routes.NAME] itself.
    """
    from llmhost.tiny_models import tiny_engine_args

    head = toml_table(f"routes.{name}", {"kind": "llm", "model": str(model), "served_names": [served]})
    table = "\n".join(head) + f"\n{extra}\n"
    table += "\n".join(toml_table(f"routes.{name}.engine", tiny_engine_args())) + "\n"
    if serving:
        table += f"[routes.{name}.serving]\n{serving}\n"
    return table


def running_requests(backend: Any) -> int:
    """The requests a vLLM backend's engine is working on (none without an engine)."""
    engine = backend.engine
    return 0 if engine is None else int(engine.get_num_unfinished_requests())


async def until_state(manager: ModelManager, route: str, *states: ModelState) -> ModelState:
    """Wait until `route` is in one of `states`, checked after every pass (where every
    state change happens); returns the state reached."""
    while True:
        state = manager.slots[route].state
        if state in states:
            return state
        await manager.scheduler.next_pass()


async def until(manager: ModelManager, check: Callable[[], bool]) -> None:
    """Wait until `check()` holds, checked now and after every pass."""
    while not check():
        await manager.scheduler.next_pass()


class WatchedTurn(asyncio.Lock):
    """The image queue's GPU turn (`ImageQueue.turn`, replaced by a test), counting the jobs
    that came to wait for it while it was taken: a test that holds the turn waits for
    `queued(n)` instead of polling the queue."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals = 0
        self._arrived = asyncio.Event()

    async def acquire(self) -> Literal[True]:
        if self.locked():
            self.arrivals += 1
            self._arrived.set()
        return await super().acquire()

    async def queued(self, count: int) -> None:
        """Until `count` jobs have come to wait for the turn."""
        while self.arrivals < count:
            self._arrived.clear()
            await self._arrived.wait()

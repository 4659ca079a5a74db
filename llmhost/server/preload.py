"""Import the engine libraries in the background at start-up, so no request pays for it.

Importing vLLM's request models takes 10-15 s on a small machine (vLLM pulls in torch
and transformers). The host must answer /healthz at once, so nothing heavy is imported
at start-up on the event loop; but the first request used to pay that import before
its model even began loading, invisible in `/stats`. Here a daemon thread imports what
the configured routes will need right after start-up, and a request that arrives
before it is done waits for it (shown as waiting for its model).

A daemon thread, not the event loop's executor: a host stopped during the import must
not wait for it to finish.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import ModuleType

log = logging.getLogger("llmhost")

# What each route kind imports before it can validate a request or load a model.
MODULES_BY_KIND: dict[str, tuple[str, ...]] = {
    "llm": (
        "vllm.entrypoints.openai.chat_completion.protocol",
        "vllm.entrypoints.openai.completion.protocol",
        "vllm.v1.engine.async_llm",
    ),
    "diffusion": ("diffusers",),
    "embedding": ("vllm.entrypoints.pooling.embed.protocol", "vllm.v1.engine.async_llm"),
    "rerank": ("vllm.entrypoints.pooling.scoring.protocol", "vllm.v1.engine.async_llm"),
}


THREAD_NAME = "llmhost-preload"


class Preloader:
    """Imports modules in one background thread; `module(name)` awaits one of them.

    A request waiting for an import waits on an asyncio.Event that the import thread sets
    (through the loop's call_soon_threadsafe), not in a worker thread: dozens of requests
    can arrive during the import, and each blocked worker would be one fewer for the
    threaded work the host needs meanwhile (estimates, engine starts, settling).
    """

    def __init__(
        self, kinds: Iterable[str], import_module: Callable[[str], ModuleType] = importlib.import_module
    ) -> None:
        self._import = import_module
        names: list[str] = []
        for kind in kinds:
            names += [n for n in MODULES_BY_KIND.get(kind, ()) if n not in names]
        self.names = tuple(names)
        # Set by the import thread; read by anyone (`ready` reads them from any thread).
        self._done: dict[str, threading.Event] = {name: threading.Event() for name in self.names}
        # Per module, the events requests await, one per event loop (there is one in the
        # host); created by the first waiter and set from the import thread, under _lock.
        self._arrivals: dict[str, dict[asyncio.AbstractEventLoop, asyncio.Event]] = {}
        self._lock = threading.Lock()
        self._modules: dict[str, ModuleType] = {}
        self._thread: threading.Thread | None = None
        self.seconds: float | None = None  # how long the whole preload took

    def start(self) -> None:
        if not self.names or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        for name in self.names:
            try:
                self._modules[name] = self._import(name)
            except Exception as exc:  # the request or load that needs it reports it
                log.warning("preloading %s failed: %s", name, exc)
            finally:
                self._finished(name)
        self.seconds = time.monotonic() - started
        log.info("engine libraries imported in %.1f s (%s)", self.seconds, ", ".join(self.names))

    def _finished(self, name: str) -> None:
        """Mark `name` done and wake the requests waiting for it (called in the import thread)."""
        with self._lock:
            self._done[name].set()
            arrivals = self._arrivals.pop(name, {})
        for loop, event in arrivals.items():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: nobody there waits any more
                pass

    def _arrival(self, name: str) -> asyncio.Event | None:
        """The event that says `name` is done, for this loop; None when it is done already."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._done[name].is_set():
                return None
            return self._arrivals.setdefault(name, {}).setdefault(loop, asyncio.Event())

    async def settled(self) -> None:
        """Wait, on the event loop and holding no worker thread, until every preload import
        is done (at once when there is no preload)."""
        if self._thread is None:
            return
        for name in self.names:
            arrival = self._arrival(name)
            if arrival is not None:
                await arrival.wait()

    def ready(self, name: str) -> bool:
        """Whether `name` needs no waiting: imported, and not still being imported."""
        event = self._done.get(name)
        imported = name in self._modules or name in sys.modules
        return imported and (event is None or event.is_set())

    async def module(self, name: str) -> ModuleType:
        """The module, imported: at once when done, else when the preload (or we) got it."""
        if name in self._done and self._thread is not None:
            arrival = self._arrival(name)
            if arrival is not None:
                await arrival.wait()
            module = self._modules.get(name)
            if module is not None:
                return module
        module = sys.modules.get(name)
        if module is not None and (name not in self._done or self._done[name].is_set()):
            return module
        # Not preloaded (or its import failed there): import here, off the event loop.
        return await asyncio.to_thread(self._import, name)

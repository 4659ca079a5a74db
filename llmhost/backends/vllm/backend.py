"""An `llm` route: vLLM's AsyncLLM in this process, its start, its stop and its failure.

vLLM is imported inside `start` (in a worker thread), never at module import: the
host must start in well under 2 s, and importing vLLM alone takes about 6 s. The engine
itself is llmhost.backends.vllm.engine's, the serving objects vLLM's OpenAI layer
(llmhost.backends.vllm.serving), the sleep and wake llmhost.backends.vllm.standby's.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path
from typing import Any

from llmhost.backends import heap
from llmhost.backends.base import ABANDON_TIMEOUT_SECONDS, LoadFailed
from llmhost.backends.vllm.context_fit import create_fitted
from llmhost.backends.vllm.engine import (
    SHUTDOWN_TIMEOUT_SECONDS,
    create_engine,
    shutdown,
    use_spawn,
    vllm_collectors,
)
from llmhost.backends.vllm.failure import capture_config, new_log_file, root_cause
from llmhost.backends.vllm.processes import EngineProcesses
from llmhost.backends.vllm.serving import build_serving
from llmhost.backends.vllm.standby import SleepMode
from llmhost.backends.vllm.start_phases import Attempts, phase_log_for
from llmhost.backends.vllm.start_report import EngineStart
from llmhost.config import HostConfig, RouteConfig

log = logging.getLogger("llmhost.vllm")

# After vLLM's shutdown returns, how long its processes get to be gone before we kill them.
PROCESS_EXIT_TIMEOUT_SECONDS = 10.0
# The longest a stop takes: the shutdown, the wait for the processes, 5 s after killing
# them (EngineProcesses.wait_gone). Within the bound every backend keeps
# (llmhost.backends.base.STOP_BOUND_SECONDS), which a request's default wait counts.
STOP_SECONDS = SHUTDOWN_TIMEOUT_SECONDS + PROCESS_EXIT_TIMEOUT_SECONDS + 5.0


class EngineStartError(LoadFailed):
    """The engine did not start; the message is vLLM's root cause, in one line."""


class VllmBackend(SleepMode):
    """An `llm` route's engine: started, served, stopped and watched for its death here;
    put to sleep and woken through `SleepMode` (llmhost.backends.vllm.standby)."""

    def __init__(self, route: RouteConfig, host: HostConfig) -> None:
        self.route = route
        self.engine: Any = None
        self.models: Any = None
        self.chat: Any = None
        self.completion: Any = None
        self.responses: Any = None
        self.messages: Any = None
        # This engine's Prometheus collectors. vLLM unregisters the previous engine's
        # metrics from the global registry whenever a new engine starts, so we keep our
        # own references to each resident engine's (see llmhost.server.metrics).
        self.metric_collectors: list[Any] = []
        self._procs: EngineProcesses | None = None
        self._failure_log: Path | None = None
        self._creating: asyncio.Future[Any] | None = None  # the engine being created
        self._abandoned = False
        self.engine_start: EngineStart | None = None  # what the engine's start said about it

    async def start(self) -> None:
        # The engine's processes go to the watchdog as they appear: a host killed while
        # the engine starts must not leave them holding GPU memory.
        procs = self._procs = EngineProcesses()
        procs.start_watching()
        creating = self._creating = asyncio.ensure_future(asyncio.to_thread(self._create_engine))
        try:
            # Shielded: cancelling the start must not forget the thread still creating
            # the engine; stop() ends it (by killing its processes) and waits for it.
            engine = await asyncio.shield(creating)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._abandoned:
                raise EngineStartError("the load was abandoned (stop requested)") from exc
            raise EngineStartError(root_cause(exc, self._failure_log)) from exc
        finally:
            procs.stop_watching()
        if self._abandoned:  # stop() came while the engine finished starting
            raise EngineStartError("the load was abandoned (stop requested)")
        self.engine = engine
        procs.add(_engine_pids(engine))
        self.metric_collectors = vllm_collectors()
        await self._build_serving()
        heap.freeze()  # its objects stay out of full collections while it serves

    def _create_engine(self) -> Any:
        use_spawn()  # before capture_config imports vLLM
        engine = dict(self.route.engine)
        self._enable_sleep_mode(engine)
        if not {"logging_config", "log_config_file"} & engine.keys():
            self._failure_log = new_log_file(self.route.name)
            phase_log_for(self._failure_log).unlink(missing_ok=True)  # this start's phases only
            logging_config = capture_config(self._failure_log, phase_log_for(self._failure_log))
            if logging_config is not None:
                engine["logging_config"] = logging_config
        # A refused max_model_len is retried once, fitted to the memory there is.
        create = Attempts(partial(create_engine, self.route.model, self.route.model_ids))
        client, context = create_fitted(
            create,
            engine,
            self.route,
            failure_log=self._failure_log,
            procs=self._procs,
            abandoned=lambda: self._abandoned,
        )
        log_file = self._failure_log
        self.engine_start = EngineStart(context, create.phases(phase_log_for(log_file)) if log_file else ())
        return client

    async def _build_serving(self) -> None:
        serving = await build_serving(self.engine, self.route)
        self.models, self.chat, self.completion = serving.models, serving.chat, serving.completion
        self.responses, self.messages = serving.responses, serving.messages

    async def stop(self) -> None:
        await self._abandon_start()
        self._creating = None  # it holds the engine: let it go with the rest
        engine, self.engine = self.engine, None
        self.chat = self.completion = self.responses = self.messages = self.models = None
        self.metric_collectors = []
        procs, self._procs = self._procs, None
        try:
            if engine is not None:
                await shutdown(engine)
        finally:
            if procs is not None:
                # vLLM's shutdown SIGKILLs a slow engine without waiting for it to exit:
                # the memory is only free once the processes are really gone.
                await asyncio.to_thread(procs.wait_gone, PROCESS_EXIT_TIMEOUT_SECONDS)
            if engine is not None:
                heap.collect()  # the engine client's objects, frozen since its start

    async def _abandon_start(self) -> None:
        """A stop while the engine is still being created: vLLM's start cannot be cancelled,
        so kill the engine's processes (its start then fails at once), wait for the
        creating thread to return, and shut down whatever it produced."""
        creating = self._creating
        if creating is None:
            return
        # From now on the start keeps nothing it produces (start() raises instead); an
        # engine it produces is shut down here, or when it comes, never left running.
        self._abandoned = True
        if not creating.done():
            log.info("%s: abandoning the load in progress", self.route.primary_id)
        deadline = asyncio.get_running_loop().time() + ABANDON_TIMEOUT_SECONDS
        while not creating.done() and asyncio.get_running_loop().time() < deadline:
            if self._procs is not None:
                await asyncio.to_thread(self._procs.kill)  # and any that appeared since
            await asyncio.wait({creating}, timeout=0.2)
        if not creating.done():
            log.error(
                "%s: the engine start did not return %g s after its processes were killed; "
                "an engine it still returns will be shut down",
                self.route.primary_id,
                ABANDON_TIMEOUT_SECONDS,
            )
            creating.add_done_callback(self._shut_down_late)
            return
        engine = _created(creating)
        # Done, and either start() already took it (self.engine: stop() shuts it down)
        # or it never will (it sees _abandoned): then it is ours to shut down.
        if engine is not None and self.engine is not engine:
            await shutdown(engine)

    def _shut_down_late(self, creating: asyncio.Future[Any]) -> None:
        """An engine that finished starting after the stop gave up waiting for it."""
        engine = _created(creating)
        if engine is None:
            return
        log.warning("%s: an abandoned engine finished starting late; shutting it down", self.route.primary_id)
        task = asyncio.ensure_future(shutdown(engine))
        _LATE_SHUTDOWNS.add(task)
        task.add_done_callback(_LATE_SHUTDOWNS.discard)

    def failure(self) -> str | None:
        engine = self.engine
        if engine is None:
            return None
        try:
            dead = engine.engine_core.resources.engine_dead
        except AttributeError:
            return None
        return "the vLLM engine core process died" if dead else None


# Shutdowns of engines that finished starting after their stop: kept referenced until done.
_LATE_SHUTDOWNS: set[asyncio.Future[None]] = set()


def _created(creating: asyncio.Future[Any]) -> Any:
    """The engine a finished creation produced, None when it failed or was cancelled."""
    if creating.cancelled() or creating.exception() is not None:
        return None
    return creating.result()


def _engine_pids(engine: Any) -> list[int]:
    """PIDs of the engine core processes (their workers are their children)."""
    try:
        processes = engine.engine_core.resources.engine_manager.processes
    except AttributeError:  # another engine client layout: nothing we can watch
        return []
    return [p.pid for p in processes if p.pid is not None]

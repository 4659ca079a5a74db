"""An `llm` route: vLLM's AsyncLLM in this process, served through vLLM's own OpenAI layer.

vLLM is imported inside `start` (in a worker thread), never at module import: the
host must start in well under 2 s, and importing vLLM alone takes about 6 s.
Chat templating, tool-call and reasoning parsing and SSE framing are vLLM's
(`OpenAIServingChat`, `OpenAIServingCompletion`, `OpenAIServingResponses`,
`AnthropicServingMessages`), exactly as `vllm serve` wires them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from llmhost.backends import heap
from llmhost.backends.base import ABANDON_TIMEOUT_SECONDS, LoadFailed, Probe
from llmhost.backends.vllm.context_fit import create_fitted
from llmhost.backends.vllm.failure import capture_config, new_log_file, root_cause
from llmhost.backends.vllm.processes import EngineProcesses
from llmhost.backends.vllm.start_phases import Attempts, phase_log_for
from llmhost.backends.vllm.start_report import EngineStart
from llmhost.config import HostConfig, RouteConfig
from llmhost.estimate.figures import CUDA_GRAPH_BYTES

log = logging.getLogger("llmhost.vllm")

# The engine core needs this long to exit cleanly; vLLM's default 5 s sometimes
# ends in a force-kill on CPU.
SHUTDOWN_TIMEOUT_SECONDS = 30.0
# After vLLM's shutdown returns, how long its processes get to be gone before we kill them.
PROCESS_EXIT_TIMEOUT_SECONDS = 10.0
# The longest a stop takes: the shutdown, the wait for the processes, 5 s after killing
# them (EngineProcesses.wait_gone). Part of a request's default wait (llmhost.lifecycle.bounds).
STOP_BOUND_SECONDS = SHUTDOWN_TIMEOUT_SECONDS + PROCESS_EXIT_TIMEOUT_SECONDS + 5.0


# The probe every wake must reproduce (llmhost.lifecycle.operations.wake): greedy, short.
PROBE_PROMPT = "The first five prime numbers are"
PROBE_TOKENS = 8


def sleep_mode_problem() -> str | None:
    """Why vLLM has no sleep mode on this machine, None when it has one: vLLM's own
    answer (its platform detection; takes seconds on first use)."""
    from vllm.platforms import current_platform

    if not current_platform.is_sleep_mode_available():
        return (
            f"vLLM has no sleep mode on this machine's {current_platform.device_name} platform "
            "(it has one on CUDA, ROCm and XPU)"
        )
    if current_platform.is_cuda_alike() and not current_platform.is_cumem_allocator_available():
        return "vLLM's sleep mode needs its cumem allocator, which this vLLM build lacks"
    return None


def create_engine(model: str, served_names: Iterable[str], engine: dict[str, Any]) -> Any:
    """Create vLLM's AsyncLLM for `model` with the route's engine arguments (blocking).

    The one way llmhost creates an engine; the bare-engine baseline in bench/ calls it too.
    """
    _use_spawn()
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(model=model, served_model_name=list(served_names), **engine)
    return AsyncLLM.from_engine_args(args)


def _use_spawn() -> None:
    # spawn everywhere: vLLM itself picks it under WSL2 or once CUDA is initialized in
    # this process (the diffusion pipeline does that), fork otherwise; one start method
    # means one behaviour to test. A user's explicit choice is kept. An environment
    # variable because vLLM reads it there (vllm.envs), and no engine argument sets it.
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")


class EngineStartError(LoadFailed):
    """The engine did not start; the message is vLLM's root cause, in one line."""


class VllmBackend:
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
        self._standby_problem: str | None = "standby is off for this route"
        self._weights_bytes: int | None = None  # from the checkpoint's files, for standby
        self._graphs_bytes = 0  # the CUDA graphs' backup in RAM while asleep, for standby
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
        self.metric_collectors = _vllm_collectors()
        await self._build_serving()
        heap.freeze()  # its objects stay out of full collections while it serves

    def _create_engine(self) -> Any:
        _use_spawn()  # before capture_config imports vLLM
        engine = dict(self.route.engine)
        if self.route.standby == "sleep":
            self._standby_problem = sleep_mode_problem()
            if self._standby_problem is None:
                engine["enable_sleep_mode"] = True
                # Asleep, vLLM keeps the CUDA-graph pool on the GPU unless told to back it
                # up to RAM (llmhost.lifecycle.asleep): that pool is what a wake beside
                # other engines would lack. [engine] may say otherwise.
                engine.setdefault("sleep_mode_offload_cudagraph", True)
                self._weights_bytes = _weights_bytes(self.route)
                self._graphs_bytes = asleep_ram_graph_bytes(engine)
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
        from vllm.entrypoints.anthropic.serving import AnthropicServingMessages
        from vllm.entrypoints.openai.chat_completion.serving import OpenAIServingChat
        from vllm.entrypoints.openai.completion.serving import OpenAIServingCompletion
        from vllm.entrypoints.openai.models.protocol import BaseModelPath
        from vllm.entrypoints.openai.models.serving import OpenAIServingModels
        from vllm.entrypoints.openai.responses.serving import OpenAIServingResponses
        from vllm.renderers.chat_utils import load_chat_template
        from vllm.renderers.online_renderer import OnlineRenderer

        serving = self.route.serving
        engine = self.engine
        template = load_chat_template(serving.chat_template)
        self.models = OpenAIServingModels(
            engine_client=engine,
            base_model_paths=[
                BaseModelPath(name=name, model_path=self.route.model) for name in self.route.model_ids
            ],
        )
        renderer = OnlineRenderer(
            model_config=engine.model_config,
            renderer=engine.renderer,
            request_logger=None,
            chat_template=template,
            chat_template_content_format=serving.chat_template_content_format,
            trust_request_chat_template=False,
            enable_auto_tools=serving.auto_tools,
            tool_parser=serving.tool_parser,
            reasoning_parser=serving.reasoning_parser or "",
        )
        await asyncio.to_thread(renderer.warmup)
        common: dict[str, Any] = {
            "online_renderer": renderer,
            "request_logger": None,
            "enable_prompt_tokens_details": serving.enable_prompt_tokens_details,
        }
        templating: dict[str, Any] = {
            "chat_template": template,
            "chat_template_content_format": serving.chat_template_content_format,
            "enable_auto_tools": serving.auto_tools,
            "tool_parser": serving.tool_parser,
            "reasoning_parser": serving.reasoning_parser or "",
        }
        self.chat = OpenAIServingChat(engine, self.models, serving.response_role, **templating, **common)
        self.completion = OpenAIServingCompletion(engine, self.models, **common)
        # Stored responses live in this object (vLLM's in-memory store, only with
        # VLLM_ENABLE_RESPONSES_API_STORE=1): they go with the engine at its unload.
        # No tool server: the built-in tools (web search, code interpreter) are not served.
        self.responses = OpenAIServingResponses(engine, self.models, **templating, **common)
        self.messages = AnthropicServingMessages(
            engine, self.models, serving.response_role, **templating, **common
        )

    async def stop(self) -> None:
        await self._abandon_start()
        self._creating = None  # it holds the engine: let it go with the rest
        engine, self.engine = self.engine, None
        self.chat = self.completion = self.responses = self.messages = self.models = None
        self.metric_collectors = []
        procs, self._procs = self._procs, None
        try:
            if engine is not None:
                await self._shutdown(engine)
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
            await self._shutdown(engine)

    def _shut_down_late(self, creating: asyncio.Future[Any]) -> None:
        """An engine that finished starting after the stop gave up waiting for it."""
        engine = _created(creating)
        if engine is None:
            return
        log.warning("%s: an abandoned engine finished starting late; shutting it down", self.route.primary_id)
        task = asyncio.ensure_future(self._shutdown(engine))
        _LATE_SHUTDOWNS.add(task)
        task.add_done_callback(_LATE_SHUTDOWNS.discard)

    async def _shutdown(self, engine: Any) -> None:
        # Cancel the output handler here, on its own loop, before the engine core goes
        # away: otherwise it sees the dead engine and logs an alarming EngineDeadError
        # at every ordinary idle unload.
        handler = getattr(engine, "output_handler", None)
        if handler is not None and not handler.done():
            handler.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await handler
        await asyncio.to_thread(engine.shutdown, SHUTDOWN_TIMEOUT_SECONDS)

    # ---- warm standby (llmhost.backends.base.Sleeper; docs/standby.md) ----

    def standby_problem(self) -> str | None:
        return self._standby_problem

    def standby_ram_bytes(self, level: int) -> int | None:
        weights = 0 if level == 2 else self._weights_bytes
        return None if weights is None else weights + self._graphs_bytes

    async def sleep(self, level: int) -> int | None:
        before = self._rss()
        await self.engine.sleep(level)
        after = self._rss()
        return max(0, after - before) if before is not None and after is not None else None

    async def wake(self, level: int) -> None:
        engine = self.engine
        if level == 2:
            # vLLM's documented order after a level-2 sleep: the weights' memory, the
            # weights themselves from disk (else the model wakes into gibberish), then
            # the KV cache.
            await engine.wake_up(tags=["weights"])
            await engine.collective_rpc("reload_weights")
            await engine.wake_up(tags=["kv_cache"])
        else:
            await engine.wake_up()
        await engine.reset_prefix_cache()

    async def probe(self) -> Probe:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=PROBE_TOKENS, ignore_eos=True)
        final: Any = None
        request_id = f"llmhost-probe-{id(params)}"
        async for output in self.engine.generate(PROBE_PROMPT, params, request_id=request_id):
            final = output
        if final is None or not final.outputs:
            raise RuntimeError("the probe produced no output")
        completion = final.outputs[0]
        return Probe(tuple(completion.token_ids), completion.text)

    def _rss(self) -> int | None:
        procs = self._procs
        return None if procs is None else procs.rss_bytes()

    def failure(self) -> str | None:
        engine = self.engine
        if engine is None:
            return None
        try:
            dead = engine.engine_core.resources.engine_dead
        except AttributeError:
            return None
        return "the vLLM engine core process died" if dead else None

    def running_requests(self) -> int:
        """Requests the engine is working on (for tests and /stats)."""
        if self.engine is None:
            return 0
        return int(self.engine.get_num_unfinished_requests())


def asleep_ram_graph_bytes(engine: dict[str, Any]) -> int:
    """The host RAM an asleep engine's CUDA graphs take when they are backed up there."""
    if engine.get("enforce_eager") or not engine.get("sleep_mode_offload_cudagraph"):
        return 0
    return CUDA_GRAPH_BYTES


# Shutdowns of engines that finished starting after their stop: kept referenced until done.
_LATE_SHUTDOWNS: set[asyncio.Future[None]] = set()


def _created(creating: asyncio.Future[Any]) -> Any:
    """The engine a finished creation produced, None when it failed or was cancelled."""
    if creating.cancelled() or creating.exception() is not None:
        return None
    return creating.result()


def _weights_bytes(route: RouteConfig) -> int | None:
    """The checkpoint's weights, from its files (llmhost.estimate): what a level-1 sleep
    holds in host RAM. None when unknown; the manager then assumes the whole footprint."""
    from llmhost.estimate import estimate_route

    try:
        return estimate_route(route).weights_bytes
    except Exception:  # advice only: never fails a load
        return None


def _vllm_collectors() -> list[Any]:
    """The `vllm:` collectors now in prometheus_client's registry (loads never overlap,
    so right after a start they are the new engine's)."""
    from prometheus_client import REGISTRY

    return [
        collector
        for collector in list(REGISTRY._collector_to_names)  # no public listing exists
        if str(getattr(collector, "_name", "")).startswith("vllm:")
    ]


def _engine_pids(engine: Any) -> list[int]:
    """PIDs of the engine core processes (their workers are their children)."""
    try:
        processes = engine.engine_core.resources.engine_manager.processes
    except AttributeError:  # another engine client layout: nothing we can watch
        return []
    return [p.pid for p in processes if p.pid is not None]

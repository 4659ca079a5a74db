"""Warm standby on vLLM's side (llmhost.backends.base.Sleeper; docs/standby.md): whether this
machine's vLLM has a sleep mode, the engine arguments a standby route starts with, and the
sleep, the wake and the probe that checks a woken engine.

The rules of when a model sleeps are the lifecycle's; this module only does what vLLM
needs. vLLM is imported inside the functions, never at module import.
"""

from __future__ import annotations

from typing import Any

from llmhost.backends.base import Probe
from llmhost.backends.vllm.processes import EngineProcesses
from llmhost.config import RouteConfig
from llmhost.estimate.figures import CUDA_GRAPH_BYTES

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


class SleepMode:
    """The Sleeper half of `VllmBackend`: it sets `route`, `engine` and `_procs`."""

    route: RouteConfig
    engine: Any
    _procs: EngineProcesses | None
    # Until a start turns sleep mode on (set per instance by `_enable_sleep_mode`).
    _standby_problem: str | None = "standby is off for this route"
    _weights_bytes: int | None = None  # from the checkpoint's files
    _graphs_bytes = 0  # the CUDA graphs' backup in RAM while asleep

    def _enable_sleep_mode(self, engine: dict[str, Any]) -> None:
        """Turn vLLM's sleep mode on in `engine` (the engine arguments about to be used)
        when the route asks for standby and vLLM has one here; else say why not."""
        if self.route.standby != "sleep":
            return
        self._standby_problem = sleep_mode_problem()
        if self._standby_problem is None:
            engine["enable_sleep_mode"] = True
            # Asleep, vLLM keeps the CUDA-graph pool on the GPU unless told to back it
            # up to RAM (llmhost.lifecycle.standby): that pool is what a wake beside
            # other engines would lack. [engine] may say otherwise.
            engine.setdefault("sleep_mode_offload_cudagraph", True)
            self._weights_bytes = _weights_bytes(self.route)
            self._graphs_bytes = asleep_ram_graph_bytes(engine)

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


def asleep_ram_graph_bytes(engine: dict[str, Any]) -> int:
    """The host RAM an asleep engine's CUDA graphs take when they are backed up there."""
    if engine.get("enforce_eager") or not engine.get("sleep_mode_offload_cudagraph"):
        return 0
    return CUDA_GRAPH_BYTES


def _weights_bytes(route: RouteConfig) -> int | None:
    """The checkpoint's weights, from its files (llmhost.estimate): what a level-1 sleep
    holds in host RAM. None when unknown; the manager then assumes the whole footprint."""
    from llmhost.estimate import estimate_route

    try:
        return estimate_route(route).weights_bytes
    except Exception:  # advice only: never fails a load
        return None

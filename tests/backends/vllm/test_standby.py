"""Warm standby on vLLM's side (llmhost.backends.vllm.standby).

The engine arguments of a standby route: sleep mode on, and the CUDA-graph pool backed
up to host RAM during sleep (vLLM keeps it on the GPU otherwise), unless [engine] says not.

Against real tiny vLLM engines on CPU: vLLM has no sleep mode on CPU (its platform says
so), so here a route asking for standby swaps by shutdown, with the reason in the log and
/stats. vLLM's sleep and wake calls still run on a CPU engine (the worker skips the memory
part; the scheduler pauses and resumes, a level-2 wake rereads the weights from disk),
which tests the probe and the order of the wake steps; the memory they free is proven on
a GPU (docs/standby.md).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from llmhost import vllm_source
from llmhost.backends.vllm import backend as vllm
from llmhost.backends.vllm import standby
from llmhost.backends.vllm.backend import VllmBackend
from llmhost.backends.vllm.standby import sleep_mode_problem
from llmhost.config import HostConfig, parse_catalog
from llmhost.estimate.figures import CUDA_GRAPH_BYTES
from llmhost.units import GIB
from llmhost.vllm_source.engine import _accepts_field
from tests.apphelp import ServerThread, make_app, tiny_llm_route
from tests.fakes import catalog


def _route(tiny_models: Any, name: str = "coder", served: str = "coder-fast") -> str:
    return tiny_llm_route(name, tiny_models.llm, served, extra='standby = "sleep"')


@pytest.mark.skipif(vllm_source.known() is None, reason="vLLM is not installed")
def test_vllm_has_the_engine_argument() -> None:
    # vLLM 0.32: ModelConfig.sleep_mode_offload_cudagraph, an EngineArgs field ("Back up
    # CUDA graph memory to CPU during sleep, restored in place on wake").
    assert _accepts_field("sleep_mode_offload_cudagraph").types == {"bool"}


@pytest.mark.parametrize(
    ("engine", "offload", "ram"),
    [({}, True, GIB + CUDA_GRAPH_BYTES), ({"sleep_mode_offload_cudagraph": False}, False, GIB)],
)
def test_a_standby_engine_offloads_its_cuda_graphs_while_asleep(
    monkeypatch: pytest.MonkeyPatch, engine: dict[str, Any], offload: bool, ram: int
) -> None:
    route = catalog("exclusive", ("a",), every_route={"standby": "sleep", "engine": engine}).routes["a"]
    backend = VllmBackend(route, HostConfig())
    seen: dict[str, Any] = {}

    def create_fitted(create: Any, args: dict[str, Any], *_: Any, **__: Any) -> tuple[object, None]:
        seen.update(args)
        return object(), None

    monkeypatch.setattr(standby, "sleep_mode_problem", lambda: None)  # a platform with sleep mode
    monkeypatch.setattr(standby, "_weights_bytes", lambda route: GIB)
    monkeypatch.setattr(vllm, "create_fitted", create_fitted)
    backend._create_engine()
    assert seen["enable_sleep_mode"] is True
    assert seen["sleep_mode_offload_cudagraph"] is offload
    assert backend.standby_ram_bytes(1) == ram  # the graphs' backup is held in RAM too


@pytest.mark.engine
def test_cpu_has_no_sleep_mode() -> None:
    problem = sleep_mode_problem()
    assert problem is not None and "cpu" in problem.lower()


@pytest.mark.engine
async def test_the_probe_repeats_and_survives_sleep_and_wake_calls(tiny_models: Any) -> None:
    route = parse_catalog(_route(tiny_models)).routes["coder"]
    backend = VllmBackend(route, HostConfig())
    await backend.start()
    try:
        # Standby was asked for, but this platform has none: no enable_sleep_mode was
        # passed (vLLM would have refused to start) and the backend says why.
        assert "cpu" in (backend.standby_problem() or "").lower()
        recorded = await backend.probe()
        assert len(recorded.token_ids) == 8 and recorded.text
        assert (await backend.probe()) == recorded  # greedy and fixed: the same every time
        for level in (1, 2):
            await backend.sleep(level)
            assert await backend.engine.is_sleeping()
            await backend.wake(level)  # level 2: weights, reload_weights, KV cache, prefix reset
            assert not await backend.engine.is_sleeping()
            assert (await backend.probe()) == recorded
    finally:
        await backend.stop()


@pytest.mark.engine
def test_a_standby_route_swaps_by_shutdown_on_cpu_and_says_why(
    tiny_models: Any, caplog: pytest.LogCaptureFixture
) -> None:
    text = (
        '[host]\npolicy = "exclusive"\n' + _route(tiny_models) + _route(tiny_models, "chat", "chat-general")
    )
    caplog.set_level(logging.INFO, logger="llmhost")
    with ServerThread(make_app(parse_catalog(text))) as server:
        for model in ("coder-fast", "chat-general"):
            response = httpx.post(
                f"{server.url}/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                timeout=300,
            )
            assert response.status_code == 200, response.text
        stats = {m["route"]: m for m in httpx.get(f"{server.url}/stats").json()["models"]}
    coder = stats["coder"]
    assert coder["state"] == "stopped" and coder["sleeps"] == 0 and coder["evictions"] == 1
    assert coder["standby"] == "unavailable" and "cpu" in coder["standby_reason"].lower()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # One warning, at start-up: not one more per load.
    assert [w for w in warnings if "standby" in w or "sleep" in w] == [
        next(w for w in warnings if w.startswith("standby requested for coder, chat but unavailable"))
    ], warnings
    assert not any("putting" in r.getMessage() for r in caplog.records)  # nothing was put to sleep

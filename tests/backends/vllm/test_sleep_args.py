"""The engine arguments of a standby route: sleep mode on, and the CUDA-graph pool backed
up to host RAM during sleep (vLLM keeps it on the GPU otherwise), unless [engine] says not."""

from __future__ import annotations

from typing import Any

import pytest

from llmhost import vllm_source
from llmhost.backends.vllm import backend as vllm
from llmhost.backends.vllm.backend import VllmBackend
from llmhost.config import HostConfig
from llmhost.estimate.figures import CUDA_GRAPH_BYTES
from llmhost.units import GIB
from llmhost.vllm_source.engine import _accepts_field
from tests.fakes import catalog


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

    monkeypatch.setattr(vllm, "sleep_mode_problem", lambda: None)  # a platform with sleep mode
    monkeypatch.setattr(vllm, "_weights_bytes", lambda route: GIB)
    monkeypatch.setattr(vllm, "create_fitted", create_fitted)
    backend._create_engine()
    assert seen["enable_sleep_mode"] is True
    assert seen["sleep_mode_offload_cudagraph"] is offload
    assert backend.standby_ram_bytes(1) == ram  # the graphs' backup is held in RAM too

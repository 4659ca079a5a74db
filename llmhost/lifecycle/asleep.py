"""What a vLLM engine keeps on the GPU while asleep, beside its CUDA context.

vLLM's sleep gives back the weights and the KV cache; the engine's CUDA context stays
(about the engine margin), and so does its CUDA-graph pool unless the engine argument
`sleep_mode_offload_cudagraph` is on (vLLM 0.32's ModelConfig: "Back up CUDA graph memory
to CPU during sleep, restored in place on wake"; about 0.5 GiB measured on a 4080). The
host turns it on for standby routes (llmhost.backends.vllm.backend), so an asleep engine keeps
its context only; a route that turns it off in [engine] keeps its graphs on the GPU, and
the engines loaded beside it leave room for them too (llmhost.lifecycle.scheduler).
"""

from __future__ import annotations

from llmhost.config import RouteConfig
from llmhost.estimate.figures import CUDA_GRAPH_BYTES


def cudagraphs_asleep(route: RouteConfig) -> str | None:
    """Where an asleep engine of `route` keeps its CUDA graphs: "offloaded" (to host RAM,
    the host's default), "on_gpu" ([engine] sleep_mode_offload_cudagraph = false) or
    "none" (enforce_eager: it has none). None: the route never sleeps a vLLM engine."""
    if route.standby != "sleep" or not route.runs_vllm:
        return None
    if route.engine.get("enforce_eager"):
        return "none"
    if not route.engine.get("sleep_mode_offload_cudagraph", True):
        return "on_gpu"
    return "offloaded"


def asleep_graph_bytes(route: RouteConfig) -> int:
    """GPU memory an asleep engine of `route` keeps for its CUDA graphs (0: none there)."""
    return CUDA_GRAPH_BYTES if cudagraphs_asleep(route) == "on_gpu" else 0

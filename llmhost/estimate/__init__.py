"""Will a route fit on the GPU? An estimate from config files, before anything downloads or loads.

`llmhost check --gpu-memory GIB` prints it per route. For the host's memory sizing
(llmhost.lifecycle.sizing, policy "fit"): `RouteEstimate.need_bytes` is what a route
takes on the card, engine CUDA context included; `RouteEstimate.engine_bytes` leaves the
context out, which is what vLLM's `gpu_memory_utilization` budget has to cover.

An LLM route needs, in one vLLM engine process:

* **weights**: the safetensors index's `metadata.total_size`, else the sum of the
  `*.safetensors` files, read from the local model directory or the Hugging Face cache
  (or, with `online=True`, from the Hub's file metadata); rescaled when vLLM loads an
  unquantized fp32 checkpoint as 16-bit (its `dtype="auto"`).
* **KV cache for one sequence of `max_model_len` tokens**: the least vLLM needs to start
  at all (`vllm/v1/core/kv_cache_utils.py`, `check_enough_kv_cache_memory`: "To serve at
  least one request with the model's max seq len ... KV cache is needed"). With more
  memory vLLM gives the KV cache the rest; that is concurrency, not a requirement.
* **overhead**: the engine's CUDA context, CUDA graphs, activations and sampler at the
  profile run's peak, and memory outside torch's allocator (numbers and their sources
  below).

A diffusion route needs its components' weights (at the load dtype), the activations of
one image at `max_edge`, and the host process's CUDA context; with diffusers' model
offload only the largest component is on the GPU at a time, with sequential offload
only a layer or so.

One module per part: `figures` (the overhead constants and their sources), `llm`
(config.json arithmetic), `diffusion`, `files` (where the files are), `result`
(estimate and verdict), `render` (the table `llmhost check` prints).

Pure where it can be: parsing, arithmetic and verdicts take dicts and numbers. Reading
the cache uses huggingface_hub (no torch, no vLLM: `llmhost check` stays fast).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from llmhost.config import RouteConfig
from llmhost.estimate.diffusion import estimate_diffusion
from llmhost.estimate.figures import TIGHT_FRACTION
from llmhost.estimate.files import locate
from llmhost.estimate.llm import estimate_llm
from llmhost.estimate.pooling import estimate_pooling
from llmhost.estimate.render import detected_gpu_bytes, render
from llmhost.estimate.result import RouteEstimate, Verdict, resident_together, verdict
from llmhost.units import GIB

# The public face; the parts (figures, llm arithmetic, diffusion, files) are imported
# from their own modules.
__all__ = [
    "GIB",
    "TIGHT_FRACTION",
    "RouteEstimate",
    "Verdict",
    "detected_gpu_bytes",
    "estimate_route",
    "estimate_routes",
    "render",
    "resident_together",
    "verdict",
]

log = logging.getLogger("llmhost.estimate")


def estimate_route(
    route: RouteConfig, *, cache_dir: Path | None = None, online: bool = False
) -> RouteEstimate:
    """The estimated GPU need of `route`, from its local directory, the Hugging Face cache
    (`cache_dir`, default: huggingface_hub's) or, with `online`, the Hub's metadata."""
    probe = "model_index.json" if route.kind == "diffusion" else "config.json"
    files, reason = locate(route, cache_dir, online, probe)
    if files is None:
        return RouteEstimate(None, None, None, reason)
    try:
        if route.kind == "diffusion":
            return estimate_diffusion(route, files)
        if route.pooling:  # embedding and rerank engines: no sampler, encoders no KV cache
            return estimate_pooling(route, files)
        return estimate_llm(route, files)
    except Exception as exc:  # a malformed file or a Hub error mid-way: unknown, with why
        log.debug("estimate of %s failed", route.name, exc_info=True)
        return RouteEstimate(None, None, None, f"{type(exc).__name__}: {exc}", source=files.where)


def estimate_routes(
    routes: Iterable[RouteConfig], *, cache_dir: Path | None = None, online: bool = False
) -> dict[str, RouteEstimate]:
    return {route.name: estimate_route(route, cache_dir=cache_dir, online=online) for route in routes}

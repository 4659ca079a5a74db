"""Diffusion routes: components' weights at the load dtype and one image's activations."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from llmhost.config import RouteConfig
from llmhost.estimate.figures import (
    CUDA_CONTEXT_BYTES,
    DIT_LIVE_FACTOR,
    DIT_TEXT_TOKENS,
    SEQUENTIAL_OFFLOAD_BYTES,
    VAE_CHANNELS,
    VAE_LIVE_MAPS,
    VAE_TILE_EDGE,
)
from llmhost.estimate.files import Directory, Files
from llmhost.estimate.result import RouteEstimate

# ---- diffusion routes ---------------------------------------------------------------------

# A diffusers variant file: name.fp16.safetensors, name.fp16-00001-of-00002.safetensors.
_VARIANT = re.compile(r"\.(fp16|bf16|fp32|non_ema|ema)([.-])")
_NOT_WEIGHTS = ("scheduler", "tokenizer", "feature_extractor")


def diffusion_components(index: Mapping[str, Any], pipeline: Any) -> list[str]:
    """The model_index.json components that hold weights and will be loaded."""
    names = []
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or value[:1] == [None]:
            continue
        if name.startswith(_NOT_WEIGHTS):
            continue
        if name == "text_encoder_3" and not getattr(pipeline, "text_encoder_3", True):
            continue
        if name == "safety_checker" and not getattr(pipeline, "enable_safety_checker", True):
            continue
        names.append(name)
    return names


def _component_files(sizes: Mapping[str, int], component: str) -> dict[str, int]:
    """The files diffusers loads for one component: non-variant ones when there are any."""
    inside = {n: s for n, s in sizes.items() if n.startswith(f"{component}/") and n.count("/") == 1}
    plain = {n: s for n, s in inside.items() if not _VARIANT.search(n.rsplit("/", 1)[1])}
    return plain or inside


def _keep_fp32_bytes(config: Mapping[str, Any] | None, load_bytes: int) -> int:
    """transformers keeps T5's feed-forward output (`wo`) in fp32 whatever the dtype
    (T5PreTrainedModel._keep_in_fp32_modules = ["wo"]): the extra bytes over `load_bytes`."""
    if not config or config.get("model_type") != "t5" or load_bytes >= 4:
        return 0
    layers = int(config.get("num_layers") or 0)
    return layers * int(config.get("d_ff") or 0) * int(config.get("d_model") or 0) * (4 - load_bytes)


def diffusion_activation_bytes(max_edge: int, transformer: Mapping[str, Any] | None, tiling: bool) -> int:
    """One image at max_edge x max_edge: the VAE decode's peak, plus the denoiser's."""
    edge = min(max_edge, VAE_TILE_EDGE) if tiling else max_edge
    vae = VAE_LIVE_MAPS * VAE_CHANNELS * edge * edge * 2
    hidden = 0
    if transformer:
        heads = int(transformer.get("num_attention_heads") or 0)
        head_dim = int(transformer.get("attention_head_dim") or 0)
        hidden = heads * head_dim
    tokens = max_edge * max_edge // 256 + DIT_TEXT_TOKENS
    dit = 2 * tokens * hidden * DIT_LIVE_FACTOR * 2
    return vae + dit


def estimate_diffusion(route: RouteConfig, files: Files) -> RouteEstimate:
    index = files.json("model_index.json")
    if index is None:
        return RouteEstimate(None, None, None, f"no model_index.json in {files.where}", source=files.where)
    pipe = route.pipeline
    load_bytes = 4 if pipe.torch_dtype == "float32" else 2  # "auto" is float16 on a GPU
    sizes = files.sizes()
    parts: dict[str, int] = {}
    for component in diffusion_components(index, pipe):
        chosen = _component_files(sizes, component)
        if not chosen:
            continue
        total = sum(size * files.dtype_scale(name, load_bytes) for name, size in chosen.items())
        parts[component] = int(total) + _keep_fp32_bytes(files.json(f"{component}/config.json"), load_bytes)
    if not parts:
        reason = f"no safetensors weights in {files.where}"
        if isinstance(files, Directory) and files.where.startswith("the cache"):
            reason = f"weights not in the cache: llmhost pull {route.name}"
        return RouteEstimate(None, None, None, reason, source=files.where)
    transformer = files.json("transformer/config.json")
    activations = diffusion_activation_bytes(pipe.max_edge, transformer, pipe.enable_tiling)
    offload = getattr(pipe, "offload", "none")
    if offload == "sequential":
        weights = SEQUENTIAL_OFFLOAD_BYTES
    elif offload == "model":
        weights = max(parts.values())
    else:
        weights = sum(parts.values())
    precision = "fp32" if load_bytes == 4 else "fp16"
    return RouteEstimate(
        weights, None, CUDA_CONTEXT_BYTES + activations, None, source=files.where, precision=precision
    )

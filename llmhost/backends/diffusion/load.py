"""Loading a diffusers pipeline the way llmhost does: device, dtype, components, placement.

Plain functions, so that the bare-pipeline baseline in bench/ measures the very same
load: `plan_load` decides (nothing heavy is loaded yet), `open_pipeline` reads the
weights, `place` puts them on the device.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

from llmhost.config import PipelineConfig

log = logging.getLogger("llmhost.diffusion")


@dataclass(frozen=True)
class Placement:
    """How a pipeline goes onto its device: `offload` is what the loader does."""

    offload: str  # "none": the whole pipeline on the device; "model" / "sequential": hooks
    warning: str | None = None  # to log once, when the option asked for cannot apply


def plan_placement(device: str, offload: str, *, accelerate: bool) -> Placement:
    """Decide how to place the pipeline for the `offload` option on `device`.

    Offload keeps the weights in host memory and moves them to an accelerator as they
    run: on a CPU device the weights are in host memory already, so the pipeline loads
    normally and the caller logs the warning. Offload on an accelerator without the
    `accelerate` package is refused: loading whole instead would not fit where offload
    was asked for.
    """
    if offload == "none":
        return Placement("none")
    if offload not in ("model", "sequential"):
        raise ValueError(f"unknown offload option {offload!r}")
    if device.split(":", 1)[0] == "cpu":
        return Placement(
            "none",
            f'offload = "{offload}" applies to a GPU; on {device} the pipeline is in host '
            "memory anyway, so it loads normally",
        )
    if not accelerate:
        raise RuntimeError(
            f'offload = "{offload}" needs the accelerate package (pip install accelerate, '
            "part of the cuda extra)"
        )
    return Placement(offload)


@dataclass(frozen=True)
class LoadPlan:
    """What `open_pipeline` and `place` do for one load, decided before any weight is read."""

    device: str
    dtype: Any  # a torch.dtype
    placement: Placement
    kwargs: dict[str, Any]  # for AutoPipelineForText2Image.from_pretrained
    safety_checker: bool  # whether the checkpoint has one (loaded or not)


def plan_load(model: str, opts: PipelineConfig, *, name: str) -> LoadPlan:
    """Decide device, dtype, placement and which components to load; `name` is for logs.

    Reads the checkpoint's model_index.json (the one file it needs) and warns, once per
    load, about options that cannot apply.
    """
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # Loading bars are noise in a service log, written at every cold start and swap.
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    placement = plan_placement(
        device, opts.offload, accelerate=importlib.util.find_spec("accelerate") is not None
    )
    if placement.warning:
        log.warning("%s: %s", name, placement.warning)
    dtype = _torch_dtype(torch, opts.torch_dtype, device)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if opts.revision:
        kwargs["revision"] = opts.revision
    index = _model_index(model, opts.revision)
    checker = _has_component(index, "safety_checker")
    if checker and not opts.enable_safety_checker:
        # Not loading it at all saves its memory (about 1 GB for SD 1.x).
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if not opts.text_encoder_3:
        if _has_component(index, "text_encoder_3"):
            # SD3 without T5-XXL: the pipeline encodes with the two CLIPs alone (and
            # the T5 weights are not even downloaded).
            kwargs.update(text_encoder_3=None, tokenizer_3=None)
        else:
            log.warning(
                "%s: text_encoder_3 = false does not apply: this pipeline has no "
                "text_encoder_3 (only SD3 pipelines have one); loading it as it is",
                name,
            )
    return LoadPlan(device, dtype, placement, kwargs, checker)


def open_pipeline(model: str, plan: LoadPlan, opts: PipelineConfig) -> Any:
    """Read the pipeline's weights into host memory, with the memory-saving options on."""
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(model, **plan.kwargs)
    pipe.set_progress_bar_config(disable=True)
    if opts.enable_attention_slicing:
        pipe.enable_attention_slicing()
    vae = getattr(pipe, "vae", None)
    if opts.enable_tiling and vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    return pipe


def place(pipe: Any, offload: str, device: str) -> None:
    """Put the pipeline on `device`: whole, or through diffusers' CPU offload hooks.

    "model" moves one whole component (text encoder, transformer, VAE) to the device when
    it runs and back after; "sequential" streams each submodule's weights in for its
    forward pass. Both leave the weights in host memory between uses.
    """
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)


def _model_index(model: str, revision: str | None) -> dict[str, Any]:
    from diffusers import DiffusionPipeline

    config: dict[str, Any] = DiffusionPipeline.load_config(model, revision=revision)
    return config


def _torch_dtype(torch: Any, name: str, device: str) -> Any:
    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    if device == "cpu" and name != "float32":
        log.warning("torch_dtype %s on CPU is slow or unsupported by some layers; float32 is advised", name)
    return getattr(torch, name)


def _has_component(index: dict[str, Any], name: str) -> bool:
    """Whether the pipeline's model_index.json lists `name` (not as [null, null])."""
    entry = index.get(name)
    return isinstance(entry, (list, tuple)) and any(part is not None for part in entry)


def t5_state(pipe: Any) -> str:
    """For the load log: whether an SD3 pipeline has its T5 encoder ('' for others)."""
    if "text_encoder_3" not in getattr(pipe, "components", {}):
        return ""
    return ", T5 " + ("off" if pipe.text_encoder_3 is None else "on")

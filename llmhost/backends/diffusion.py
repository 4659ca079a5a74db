"""The diffusion backend: a diffusers text-to-image pipeline loaded in-process.

`AutoPipelineForText2Image` picks the pipeline class from the checkpoint, so Stable
Diffusion 3.5 (the default), SDXL and SD 1.x checkpoints all load the same way.

Jobs run one at a time per pipeline (diffusers pipelines are not safe to call
concurrently: the scheduler keeps per-call state), each in a worker thread so the
event loop stays free. A job whose caller is cancelled stops at its next denoising
step; the pipeline stays locked until the thread has really finished, so `stop`
never frees a pipeline that is still computing.

torch and diffusers are imported inside methods only: the host starts without them.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import importlib.util
import inspect
import io
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from llmhost.config import HostConfig, PipelineConfig, RouteConfig
from llmhost.errors import InvalidRequest, ModelUnavailable
from llmhost.gpu import GIB

log = logging.getLogger("llmhost.diffusion")

# Width and height must be multiples of this before the pipeline is known: every
# supported family accepts it (SD 1.x / SDXL need 8, SD 3.x needs 16).
DEFAULT_SIZE_MULTIPLE = 16


@dataclass(frozen=True)
class ImageJob:
    """One validated generation request. `width`/`height` None: the pipeline's own size."""

    prompt: str
    seed: int
    steps: int
    guidance_scale: float
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    count: int = 1


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
class ImageResult:
    png: list[bytes]
    width: int
    height: int
    seed: int
    elapsed: float  # seconds spent generating and encoding, not waiting


def check_size(
    width: int | None,
    height: int | None,
    max_edge: int,
    multiple: int,
    *,
    param: str | None = None,
    model_max_edge: int | None = None,
) -> None:
    """Reject (never round) a size the pipeline cannot draw exactly as asked.

    `param` names the request field for errors when the size came in one field ('size').
    `model_max_edge` is what the loaded model itself can draw (SD3's position embedding).
    """
    for side, value in (("width", width), ("height", height)):
        if value is None:
            continue
        label = f"The {side} in '{param}'" if param else f"'{side}'"
        where = param or side
        if value <= 0:
            raise InvalidRequest(f"{label} must be a positive number of pixels, not {value}.", param=where)
        if value > max_edge:
            raise InvalidRequest(
                f"{label} is {value}, above this route's limit of {max_edge} pixels "
                "(max_edge, VISION_MAX_EDGE).",
                param=where,
            )
        if model_max_edge is not None and value > model_max_edge:
            raise InvalidRequest(
                f"{label} is {value}; this model draws at most {model_max_edge} pixels per side.",
                param=where,
            )
        if value % multiple:
            lower = value - value % multiple
            upper = lower + multiple
            options = " or ".join(str(v) for v in (lower, upper) if 0 < v <= max_edge)
            raise InvalidRequest(
                f"{label} must be a multiple of {multiple}; {value} is not (use {options}).",
                param=where,
            )


class DiffusionBackend:
    """One diffusers pipeline on one device, driven by the lifecycle manager."""

    def __init__(self, route: RouteConfig, host: HostConfig) -> None:
        self.route = route
        self.options: PipelineConfig = route.pipeline
        self.device: str | None = None
        self.offload = "none"  # what the loaded pipeline uses: "none", "model" or "sequential"
        self.size_multiple = DEFAULT_SIZE_MULTIPLE
        self.native_size: tuple[int, int] | None = None
        self.model_max_edge: int | None = None
        self.jobs_run = 0
        self._pipe: Any = None
        self._swap = threading.Lock()  # guards _pipe between the load thread and stop
        self._lock = asyncio.Lock()  # one job at a time; stop waits for the running one
        self._closed = False
        self._running: threading.Event | None = None  # set to interrupt the running job
        self._interruptible = False
        self._load_attempted = False

    @property
    def pipeline(self) -> Any:
        """The loaded diffusers pipeline (None when stopped)."""
        return self._pipe

    # ---- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        self._load_attempted = True
        try:
            await asyncio.to_thread(self._load)
        except BaseException as exc:
            # The traceback's frames hold the half-built pipeline; clear them so that
            # stop() can free its memory (a failed load is often an out-of-memory one).
            log.debug("loading %s failed", self.route.model, exc_info=exc)
            _clear_frames(exc)
            raise

    def _load(self) -> None:
        import torch
        from diffusers import AutoPipelineForText2Image
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        # Loading bars are noise in a service log, written at every cold start and swap.
        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        opts = self.options
        device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
        placement = plan_placement(
            device, opts.offload, accelerate=importlib.util.find_spec("accelerate") is not None
        )
        if placement.warning:
            log.warning("%s: %s", self.route.primary_id, placement.warning)
        dtype = _torch_dtype(torch, opts.torch_dtype, device)
        kwargs: dict[str, Any] = {"dtype": dtype}
        if opts.revision:
            kwargs["revision"] = opts.revision
        index = self._model_index(opts.revision)
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
                    self.route.primary_id,
                )
        self.device = device
        pipe = AutoPipelineForText2Image.from_pretrained(self.route.model, **kwargs)
        pipe.set_progress_bar_config(disable=True)
        if opts.enable_attention_slicing:
            pipe.enable_attention_slicing()
        vae = getattr(pipe, "vae", None)
        if opts.enable_tiling and vae is not None and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()
        self.offload = placement.offload
        _place(pipe, placement.offload, device)
        self.size_multiple = _size_multiple(pipe)
        self.model_max_edge = _model_max_edge(pipe)
        self.native_size = native = _native_size(pipe)
        self._interruptible = "callback_on_step_end" in inspect.signature(pipe.__call__).parameters
        with self._swap:
            if not self._closed:
                self._pipe = pipe
                pipe = None
        if pipe is not None:  # stop() came first: nobody will use this one
            self._unhook(pipe)
            del pipe
            self._release_memory()
            return
        log.info(
            "%s: %s on %s (%s), size multiple %d, native %dx%d, safety checker %s, offload %s%s",
            self.route.primary_id,
            type(self._pipe).__name__,
            device,
            str(dtype).removeprefix("torch."),
            self.size_multiple,
            *native,
            ("on" if opts.enable_safety_checker else "off") if checker else "none in this pipeline",
            placement.offload,
            _t5_state(self._pipe),
        )

    def _model_index(self, revision: str | None) -> dict[str, Any]:
        from diffusers import DiffusionPipeline

        config: dict[str, Any] = DiffusionPipeline.load_config(self.route.model, revision=revision)
        return config

    def _unhook(self, pipe: Any) -> None:
        """Remove the offload hooks: they tie the weights to the device until removed."""
        if self.offload == "none":
            return
        try:
            pipe.remove_all_hooks()
        except Exception:  # a job that failed inside a hook can leave one half-applied
            log.warning("%s: removing the offload hooks failed", self.route.primary_id, exc_info=True)

    async def stop(self) -> None:
        self._closed = True
        if self._running is not None:
            self._running.set()  # the running job stops at its next step
        async with self._lock:
            await asyncio.to_thread(self._free)

    def _free(self) -> None:
        with self._swap:
            pipe, self._pipe = self._pipe, None
        if pipe is None and not self._load_attempted:
            return
        torch: Any = sys.modules.get("torch")
        cuda = torch is not None and self.device is not None and self.device.startswith("cuda")
        tensors = torch.cuda.memory_allocated(self.device) if cuda else 0
        cached = torch.cuda.memory_reserved(self.device) if cuda else 0
        if pipe is not None:
            self._unhook(pipe)
        del pipe
        self._release_memory()
        if cuda:
            # What stays: the ~32 MiB cuBLAS workspace; the CUDA context (about 0.5 GiB more
            # in NVML's view) lives until the process exits.
            kept = torch.cuda.memory_reserved(self.device)
            log.info(
                "%s: pipeline freed: %s of tensors, %s of GPU memory handed back "
                "(torch keeps %s reserved in this process)",
                self.route.primary_id,
                _amount(tensors - torch.cuda.memory_allocated(self.device)),
                _amount(cached - kept),
                _amount(kept),
            )

    def _release_memory(self) -> None:
        gc.collect()
        if not self._empty_cuda_cache() or self.offload != "none":
            _trim_heap()  # the weights were in host memory (CPU, or offloaded from the GPU)

    def _empty_cuda_cache(self) -> bool:
        """Hand torch's cached GPU blocks back to the driver; False when not on CUDA."""
        torch: Any = sys.modules.get("torch")
        if torch is None or self.device is None or not self.device.startswith("cuda"):
            return False
        torch.cuda.empty_cache()
        return True

    def failure(self) -> str | None:
        return None  # in-process: the pipeline cannot die on its own

    # ---- generation ---------------------------------------------------------------

    async def generate(self, job: ImageJob) -> ImageResult:
        """Run one job when the pipeline is free; cancelling the caller drops or stops it."""
        check_size(
            job.width,
            job.height,
            self.options.max_edge,
            self.size_multiple,
            model_max_edge=self.model_max_edge,
        )
        async with self._lock:
            if self._closed or self._pipe is None:
                raise ModelUnavailable(
                    f"{self.route.primary_id} was unloaded before this image was started; retry.",
                    retry_after=5,
                )
            interrupt = threading.Event()
            self._running = interrupt
            work = asyncio.ensure_future(asyncio.to_thread(self._generate, self._pipe, job, interrupt))
            try:
                result = await asyncio.shield(work)
            except asyncio.CancelledError:
                interrupt.set()
                await asyncio.wait({work})  # the pipeline stays ours until the thread is done
                if not work.cancelled():
                    work.exception()  # retrieved: nobody is waiting for it any more
                raise
            except Exception as exc:
                # Its frames hold the job's activations (often the cause: out of memory).
                _clear_frames(exc)
                self._empty_cuda_cache()
                raise
            finally:
                self._running = None
        if result is None:
            raise ModelUnavailable(
                f"{self.route.primary_id} was unloaded while this image was being generated; retry.",
                retry_after=5,
            )
        return result

    def _generate(self, pipe: Any, job: ImageJob, interrupt: threading.Event) -> ImageResult | None:
        import torch

        native_w, native_h = self.native_size or (1024, 1024)
        limit = min(self.options.max_edge, self.model_max_edge or self.options.max_edge)
        limit -= limit % self.size_multiple
        width = job.width or min(native_w, limit)
        height = job.height or min(native_h, limit)
        # A CPU generator makes a seed give the same image on any device.
        generator = torch.Generator("cpu").manual_seed(job.seed)
        kwargs: dict[str, Any] = {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt,
            "num_inference_steps": job.steps,
            "guidance_scale": job.guidance_scale,
            "width": width,
            "height": height,
            "num_images_per_prompt": job.count,
            "generator": generator,
            "output_type": "pil",
        }
        if self._interruptible:

            def on_step(p: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
                if interrupt.is_set():
                    p._interrupt = True  # diffusers skips the remaining steps
                return {}

            kwargs["callback_on_step_end"] = on_step
        started = time.perf_counter()
        output = pipe(**kwargs)
        self.jobs_run += 1
        if interrupt.is_set():
            return None
        flagged = getattr(output, "nsfw_content_detected", None)
        if flagged and any(flagged):
            log.warning("%s: the safety checker blanked %d image(s)", self.route.primary_id, sum(flagged))
        pngs = [_png(image) for image in output.images]
        return ImageResult(pngs, width, height, job.seed, time.perf_counter() - started)


# ---- helpers --------------------------------------------------------------------------


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


def _t5_state(pipe: Any) -> str:
    """For the load log: whether an SD3 pipeline has its T5 encoder ('' for others)."""
    if "text_encoder_3" not in getattr(pipe, "components", {}):
        return ""
    return ", T5 " + ("off" if pipe.text_encoder_3 is None else "on")


def _place(pipe: Any, offload: str, device: str) -> None:
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


def _size_multiple(pipe: Any) -> int:
    """What width and height must divide by: the VAE's scale, times the patch size (SD3)."""
    scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    patch = getattr(pipe, "patch_size", None)
    if patch is None:
        transformer = getattr(pipe, "transformer", None)
        patch = getattr(getattr(transformer, "config", None), "patch_size", 1)
    return scale * int(patch or 1)


def _model_max_edge(pipe: Any) -> int | None:
    """SD3's transformer crops a fixed position-embedding grid: larger images fail inside it."""
    config = getattr(getattr(pipe, "transformer", None), "config", None)
    grid = getattr(config, "pos_embed_max_size", None)
    if not grid:
        return None
    return (
        int(grid)
        * int(getattr(config, "patch_size", 1) or 1)
        * int(getattr(pipe, "vae_scale_factor", 8) or 8)
    )


def _native_size(pipe: Any) -> tuple[int, int]:
    """The size the checkpoint was trained for (1024 for SD3/SDXL, 512 for SD 1.5)."""
    scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        sample = getattr(getattr(denoiser, "config", None), "sample_size", None)
    if isinstance(sample, (list, tuple)):
        return int(sample[1]) * scale, int(sample[0]) * scale
    side = int(sample) * scale if sample else 1024
    return side, side


def _amount(size: int) -> str:
    return f"{size / GIB:.2f} GiB" if abs(size) >= GIB else f"{size / (1024 * 1024):.1f} MiB"


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _clear_frames(exc: BaseException) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def _trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc keeps them otherwise; RSS stays high)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl): nothing to trim
        pass

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
import inspect
import io
import logging
import sys
import threading
import time
from typing import Any

from llmhost.backends import heap
from llmhost.backends.base import ImageJob, ImageResult
from llmhost.backends.diffusion.load import (
    open_pipeline,
    place,
    plan_load,
    t5_state,
)
from llmhost.backends.diffusion.memory import amount, clear_frames, empty_cuda_cache, trim_heap
from llmhost.backends.diffusion.shape import model_max_edge, native_size, size_multiple
from llmhost.config import HostConfig, PipelineConfig, RouteConfig
from llmhost.config.image_size import DEFAULT_SIZE_MULTIPLE, check_size
from llmhost.errors import ModelUnavailable

log = logging.getLogger("llmhost.diffusion")


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
            clear_frames(exc)
            raise
        heap.freeze()  # the pipeline's objects stay out of full collections while it serves

    def _load(self) -> None:
        opts = self.options
        plan = plan_load(self.route.model, opts, name=self.route.primary_id)
        self.device = device = plan.device
        pipe = open_pipeline(self.route.model, plan, opts)
        self.offload = plan.placement.offload
        place(pipe, plan.placement.offload, device)
        self.size_multiple = size_multiple(pipe)
        self.model_max_edge = model_max_edge(pipe)
        self.native_size = native = native_size(pipe)
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
            str(plan.dtype).removeprefix("torch."),
            self.size_multiple,
            *native,
            ("on" if opts.enable_safety_checker else "off")
            if plan.safety_checker
            else "none in this pipeline",
            plan.placement.offload,
            t5_state(self._pipe),
        )

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
                amount(tensors - torch.cuda.memory_allocated(self.device)),
                amount(cached - kept),
                amount(kept),
            )

    def _release_memory(self) -> None:
        heap.collect()  # the pipeline was frozen with the heap at its load (llmhost.backends.heap)
        if not self._empty_cuda_cache() or self.offload != "none":
            trim_heap()  # the weights were in host memory (CPU, or offloaded from the GPU)

    def _empty_cuda_cache(self) -> bool:
        return empty_cuda_cache(self.device)

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
                clear_frames(exc)
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


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()

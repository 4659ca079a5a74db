"""The diffusion backend on real tiny pipelines: load, generate, cancel, unload.

Most tests use the tiny SD3 pipeline from `llmhost.tiny_models`. The safety-checker
option only exists in SD 1.x checkpoints: the `tiny_sd15` fixture (conftest.py) saves a
tiny SD 1.x pipeline.
"""

from __future__ import annotations

import asyncio
import gc
import io
import time
import weakref
from pathlib import Path
from typing import Any

import psutil
import pytest
from PIL import Image

from llmhost.backends.base import ImageJob
from llmhost.backends.diffusion.backend import DiffusionBackend
from llmhost.config import HostConfig, RouteConfig, parse_catalog
from llmhost.errors import InvalidRequest, ModelUnavailable

MIB = 1024 * 1024


def _route(model: Path, **pipeline: Any) -> RouteConfig:
    pipeline.setdefault("device", "cpu")  # the same test on a machine with a GPU
    options = "".join(f"{key} = {_toml(value)}\n" for key, value in pipeline.items())
    catalog = parse_catalog(
        f'[routes.vision]\nkind = "diffusion"\nmodel = "{model}"\n[routes.vision.pipeline]\n{options}'
    )
    return catalog.routes["vision"]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _job(seed: int = 1, steps: int = 2, **fields: Any) -> ImageJob:
    return ImageJob(prompt="a red fox", seed=seed, steps=steps, guidance_scale=4.5, **fields)


async def _started(model: Path, **pipeline: Any) -> DiffusionBackend:
    route = _route(model, **pipeline)
    backend = DiffusionBackend(route, HostConfig())
    await backend.start()
    return backend


def _stepping(backend: DiffusionBackend, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set when the pipeline takes a denoising step (in the job's thread): from then on a
    job holds the pipeline and is computing."""
    loop = asyncio.get_running_loop()
    stepped = asyncio.Event()
    scheduler = backend.pipeline.scheduler
    step = scheduler.step

    def counted(*args: Any, **kwargs: Any) -> Any:
        loop.call_soon_threadsafe(stepped.set)
        return step(*args, **kwargs)

    monkeypatch.setattr(scheduler, "step", counted)
    return stepped


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image


@pytest.mark.engine
async def test_generates_reproducible_pngs(tiny_models: Any) -> None:
    backend = await _started(tiny_models.sd3, max_edge=128)
    try:
        assert type(backend.pipeline).__name__ == "StableDiffusion3Pipeline"
        assert backend.device == "cpu"
        assert str(backend.pipeline.transformer.dtype) == "torch.float32", "auto is float32 on CPU"
        # The tiny VAE has one block (scale factor 1); SD3's patch size is 2.
        assert backend.size_multiple == 2
        assert backend.native_size == (64, 64)
        assert backend.failure() is None

        first = await backend.generate(_job(seed=7, width=64, height=32))
        assert (first.width, first.height, first.seed) == (64, 32, 7)
        assert _decode(first.png[0]).size == (64, 32)
        assert first.elapsed > 0
        again = await backend.generate(_job(seed=7, width=64, height=32))
        other = await backend.generate(_job(seed=8, width=64, height=32))
        assert again.png == first.png, "the same seed gives the same bytes"
        assert other.png != first.png

        native = await backend.generate(_job(count=2))
        assert (native.width, native.height) == (64, 64)
        assert len(native.png) == 2 and native.png[0] != native.png[1]
        assert backend.jobs_run == 4

        with pytest.raises(InvalidRequest):  # the real multiple is checked too
            await backend.generate(_job(width=63, height=64))
    finally:
        await backend.stop()


@pytest.mark.engine
async def test_options_apply(tiny_models: Any) -> None:
    backend = await _started(
        tiny_models.sd3, enable_tiling=True, enable_attention_slicing=True, enable_safety_checker=False
    )
    try:
        assert backend.pipeline.vae.use_tiling is True
        result = await backend.generate(_job(steps=1))
        assert _decode(result.png[0]).size == (64, 64)
    finally:
        await backend.stop()


@pytest.mark.engine
async def test_sd1_pipeline_and_its_safety_checker_option(tiny_sd15: Path) -> None:
    off = await _started(tiny_sd15, enable_safety_checker=False)
    try:
        assert type(off.pipeline).__name__ == "StableDiffusionPipeline"
        assert off.pipeline.safety_checker is None, "disabled: not even loaded"
        assert (off.size_multiple, off.native_size) == (8, (64, 64))
        result = await off.generate(_job(steps=1, width=72, height=64))
        assert _decode(result.png[0]).size == (72, 64)
    finally:
        await off.stop()
    on = await _started(tiny_sd15, enable_safety_checker=True)
    try:
        assert type(on.pipeline.safety_checker).__name__ == "StableDiffusionSafetyChecker"
        assert (await on.generate(_job(steps=1))).png
    finally:
        await on.stop()


@pytest.mark.engine
async def test_job_cancelled_while_queued_never_runs(
    tiny_models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = await _started(tiny_models.sd3)
    try:
        stepped = _stepping(backend, monkeypatch)
        running = asyncio.create_task(backend.generate(_job(steps=400)))
        await asyncio.wait_for(stepped.wait(), 60)  # it holds the pipeline now, computing in its thread
        queued = asyncio.create_task(backend.generate(_job(steps=1)))
        await asyncio.sleep(0)  # one turn: it runs up to the pipeline's lock and waits there
        assert not queued.done()
        queued.cancel()
        running.cancel()  # stops at its next step
        for task in (queued, running):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert backend.jobs_run == 1, "the queued job never reached the pipeline"
    finally:
        await backend.stop()


@pytest.mark.engine
async def test_cancel_interrupts_a_running_job(tiny_models: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = await _started(tiny_models.sd3)
    try:
        await backend.generate(_job(steps=1))
        started = time.monotonic()
        await backend.generate(_job(steps=3))
        per_step = (time.monotonic() - started) / 3

        stepped = _stepping(backend, monkeypatch)
        long = asyncio.create_task(backend.generate(_job(steps=400)))
        await asyncio.wait_for(stepped.wait(), 60)  # computing in its thread
        cancelled_at = time.monotonic()
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long
        # The cancelled job gave the pipeline back within a few steps, not 400 of them.
        assert time.monotonic() - cancelled_at < max(3.0, 40 * per_step)
        assert backend.jobs_run == 3
        result = await backend.generate(_job(steps=1))
        assert result.png
    finally:
        await backend.stop()


@pytest.mark.engine
async def test_stop_waits_for_the_running_job_and_refuses_new_ones(
    tiny_models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = await _started(tiny_models.sd3)
    stepped = _stepping(backend, monkeypatch)
    running = asyncio.create_task(backend.generate(_job(steps=400)))
    await asyncio.wait_for(stepped.wait(), 60)  # computing in its thread
    await backend.stop()
    assert running.done(), "stop returned only after the job's thread finished"
    with pytest.raises(ModelUnavailable, match="unloaded while"):
        running.result()
    assert backend.pipeline is None
    with pytest.raises(ModelUnavailable, match="unloaded before"):
        await backend.generate(_job())
    await backend.stop()  # a second stop is harmless


@pytest.mark.engine
async def test_stop_frees_the_pipeline_and_process_memory(tiny_models: Any) -> None:
    process = psutil.Process()

    async def cycle() -> tuple[weakref.ref[Any], int, int]:
        backend = await _started(tiny_models.sd3)
        await backend.generate(_job(steps=1))
        ref = weakref.ref(backend.pipeline)
        loaded = process.memory_info().rss
        await backend.stop()
        return ref, loaded, process.memory_info().rss

    await cycle()  # first use: imports, caches and allocator arenas that stay for good
    gc.collect()
    before = process.memory_info().rss
    ref, loaded, after = await cycle()
    gc.collect()
    assert ref() is None, "nothing holds the pipeline after stop()"
    grown = loaded - before
    assert grown > 4 * MIB, f"the loaded pipeline should be visible in RSS (grew {grown / MIB:.1f} MiB)"
    # gc plus malloc_trim: the memory goes back to the OS, not just to the allocator.
    assert after - before < grown / 2, (
        f"RSS before {before / MIB:.1f} MiB, loaded {loaded / MIB:.1f}, after stop {after / MIB:.1f}"
    )


async def test_stop_without_start_and_failed_load(tmp_path: Path) -> None:
    backend = DiffusionBackend(_route(tmp_path / "missing"), HostConfig())
    await backend.stop()
    failing = DiffusionBackend(_route(tmp_path / "missing"), HostConfig())
    with pytest.raises(Exception):  # noqa: B017 - whatever diffusers raises for a missing model
        await failing.start()
    await failing.stop()
    assert failing.pipeline is None


def test_importing_the_host_imports_no_torch_or_diffusers() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys, llmhost.server.app, llmhost.backends.diffusion.backend, llmhost.api.images.api_router; "
        "print(sorted({'torch', 'diffusers', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.engine
async def test_a_failing_job_leaves_the_pipeline_usable(tiny_models: Any) -> None:
    backend = await _started(tiny_models.sd3, max_edge=512)
    # The tiny transformer's position table covers 192 px: known after load, refused up front.
    assert backend.model_max_edge == 192
    try:
        with pytest.raises(InvalidRequest, match="draws at most 192"):
            await backend.generate(_job(steps=1, width=256, height=64))
        # A job that fails inside diffusers (here: a negative step count slips past the
        # host's checks only when called directly) leaves the pipeline usable.
        with pytest.raises(Exception) as failed:  # whatever diffusers raises
            await backend.generate(_job(steps=-1))
        assert not isinstance(failed.value, InvalidRequest)
        assert (await backend.generate(_job(steps=1))).png
    finally:
        await backend.stop()

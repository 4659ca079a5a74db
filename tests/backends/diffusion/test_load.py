"""The vision route's memory options on the real tiny SD3 pipeline: offload and T5.

What a CPU can show: the placement decision, that `text_encoder_3 = false` loads SD3
without its T5 parts and still draws, that the offload hooks diffusers installs are
removed at unload and the pipeline's memory goes back. What only a GPU shows (VRAM
saved by offload) is measured by scripts/vision_memory.py; see docs/vision.md.
"""

from __future__ import annotations

import gc
import json
import logging
import weakref
from pathlib import Path
from typing import Any

import psutil
import pytest

from llmhost.backends.base import ImageJob
from llmhost.backends.diffusion import load as pipeline_load
from llmhost.backends.diffusion.backend import DiffusionBackend
from llmhost.backends.diffusion.load import Placement, plan_placement
from llmhost.config import HostConfig, parse_catalog
from llmhost.settings import Settings

MIB = 1024 * 1024


def _backend(model: Path, **pipeline: Any) -> DiffusionBackend:
    pipeline.setdefault("device", "cpu")
    options = "".join(f"{key} = {json.dumps(value)}\n" for key, value in pipeline.items())
    catalog = parse_catalog(
        f'[routes.vision]\nkind = "diffusion"\nmodel = "{model}"\n[routes.vision.pipeline]\n{options}'
    )
    return DiffusionBackend(catalog.routes["vision"], HostConfig())


def _job(seed: int = 3) -> ImageJob:
    return ImageJob(prompt="a red fox in the snow", seed=seed, steps=2, guidance_scale=4.5)


# ---- the decision ---------------------------------------------------------------------


def test_plan_placement() -> None:
    for device in ("cuda", "cuda:1", "cpu"):
        assert plan_placement(device, "none", accelerate=False) == Placement("none")
    for mode in ("model", "sequential"):
        assert plan_placement("cuda", mode, accelerate=True) == Placement(mode)
        assert plan_placement("cuda:1", mode, accelerate=True) == Placement(mode)
        on_cpu = plan_placement("cpu", mode, accelerate=True)
        assert on_cpu.offload == "none", "on CPU the pipeline loads normally"
        assert on_cpu.warning and f'offload = "{mode}"' in on_cpu.warning
        assert "loads normally" in on_cpu.warning
        # Without accelerate the CPU still loads (nothing to offload), a GPU refuses.
        assert plan_placement("cpu", mode, accelerate=False).offload == "none"
        with pytest.raises(RuntimeError, match="needs the accelerate package"):
            plan_placement("cuda", mode, accelerate=False)
    with pytest.raises(ValueError, match="unknown offload"):
        plan_placement("cuda", "disk", accelerate=True)


def test_config_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    route = _backend(tmp_path).route
    assert (route.pipeline.offload, route.pipeline.text_encoder_3) == ("none", True)
    with pytest.raises(Exception, match="offload"):
        _backend(tmp_path, offload="disk")
    monkeypatch.setenv("VISION_OFFLOAD", "model")
    monkeypatch.setenv("VISION_TEXT_ENCODER_3", "false")
    catalog = parse_catalog(f'[routes.vision]\nkind = "diffusion"\nmodel = "{tmp_path}"\n')
    options = Settings(_env_file=None).apply_to(catalog).routes["vision"].pipeline
    assert (options.offload, options.text_encoder_3) == ("model", False)
    monkeypatch.setenv("VISION_OFFLOAD", "partly")
    with pytest.raises(Exception, match="vision_offload"):
        Settings(_env_file=None)


def test_shipped_vision_route_fits_16_gb() -> None:
    """The shipped default is the one docs/vision.md computes to fit a 16 GB card."""
    import tomllib

    from llmhost.config import PipelineConfig

    shipped = tomllib.loads((Path(__file__).parents[3] / "models.toml").read_text())
    options = PipelineConfig.model_validate(shipped["routes"]["vision"]["pipeline"])
    assert (options.offload, options.text_encoder_3) == ("none", False)


# ---- text_encoder_3 = false -------------------------------------------------------------


@pytest.mark.engine
async def test_without_t5_draws_and_frees(tiny_models: Any) -> None:
    process = psutil.Process()
    full = _backend(tiny_models.sd3)
    await full.start()
    try:
        with_t5 = await full.generate(_job())
        weights_with_t5 = _parameters(full.pipeline)
    finally:
        await full.stop()

    warm = _backend(tiny_models.sd3, text_encoder_3=False)  # first use: imports, arenas
    await warm.start()
    await warm.stop()
    gc.collect()
    before = process.memory_info().rss

    backend = _backend(tiny_models.sd3, text_encoder_3=False)
    await backend.start()
    pipe = backend.pipeline
    assert type(pipe).__name__ == "StableDiffusion3Pipeline"
    assert pipe.text_encoder_3 is None and pipe.tokenizer_3 is None
    assert pipe.text_encoder is not None and pipe.text_encoder_2 is not None
    assert _parameters(pipe) < weights_with_t5, "the T5 encoder's weights are not loaded"
    result = await backend.generate(_job())
    again = await backend.generate(_job())
    assert result.png[0].startswith(b"\x89PNG") and (result.width, result.height) == (64, 64)
    assert again.png == result.png, "still reproducible"
    assert result.png != with_t5.png, "the T5 embedding (zeros now) changes the image"
    ref = weakref.ref(pipe)
    loaded = process.memory_info().rss
    del pipe
    await backend.stop()
    gc.collect()
    assert ref() is None, "nothing holds the pipeline after stop()"
    after = process.memory_info().rss
    assert after - before <= max(loaded - before, 0) / 2 + 8 * MIB, (
        f"RSS before {before / MIB:.1f} MiB, loaded {loaded / MIB:.1f}, after stop {after / MIB:.1f}"
    )


@pytest.mark.engine
async def test_text_encoder_3_false_on_a_pipeline_without_t5_warns(
    tiny_sd15: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = _backend(tiny_sd15, text_encoder_3=False, enable_safety_checker=False)
    with caplog.at_level(logging.WARNING, logger="llmhost.diffusion"):
        await backend.start()
    try:
        assert "text_encoder_3 = false does not apply" in caplog.text
        assert type(backend.pipeline).__name__ == "StableDiffusionPipeline"
        assert (await backend.generate(_job())).png
    finally:
        await backend.stop()


# ---- offload --------------------------------------------------------------------------


@pytest.mark.engine
@pytest.mark.parametrize("mode", ["model", "sequential"])
async def test_offload_on_cpu_warns_and_loads_normally(
    tiny_models: Any, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = _backend(tiny_models.sd3, offload=mode)
    with caplog.at_level(logging.WARNING, logger="llmhost.diffusion"):
        await backend.start()
    try:
        warnings = [r for r in caplog.records if "applies to a GPU" in r.getMessage()]
        assert len(warnings) == 1, "one clear warning"
        assert backend.offload == "none"
        assert not hasattr(backend.pipeline.transformer, "_hf_hook"), "no hooks installed"
        assert (await backend.generate(_job())).png
    finally:
        await backend.stop()


@pytest.mark.engine
async def test_model_offload_hooks_are_removed_at_unload(
    tiny_models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real enable_model_cpu_offload path, run with the CPU as its execution device.

    On a GPU host the decision is "model"; here the test makes it so (diffusers accepts an
    explicit device="cpu" for model offload), to check what the host does around the hooks:
    images still come out, and unload removes the hooks and frees the pipeline.
    """

    def as_asked(device: str, offload: str, accelerate: bool) -> Placement:
        return Placement(offload)

    monkeypatch.setattr(pipeline_load, "plan_placement", as_asked)
    plain = _backend(tiny_models.sd3)
    await plain.start()
    try:
        expected = await plain.generate(_job())
    finally:
        await plain.stop()

    backend = _backend(tiny_models.sd3, offload="model")
    await backend.start()
    pipe = backend.pipeline
    assert backend.offload == "model"
    assert pipe._all_hooks, "diffusers' model offload hooks are installed"
    for name in ("text_encoder", "text_encoder_2", "text_encoder_3", "transformer", "vae"):
        assert hasattr(getattr(pipe, name), "_hf_hook"), name
    result = await backend.generate(_job())
    assert result.png == expected.png, "offload changes where weights live, not the image"
    vae = pipe.vae  # kept to look at its hook after unload
    ref = weakref.ref(pipe)
    del pipe
    await backend.stop()
    gc.collect()
    assert not hasattr(vae, "_hf_hook"), "the hooks were removed at unload"
    assert ref() is None, "nothing holds the pipeline after stop()"


def _parameters(pipe: Any) -> int:
    import torch

    return sum(
        p.numel()
        for component in pipe.components.values()
        if isinstance(component, torch.nn.Module)
        for p in component.parameters()
    )


@pytest.mark.engine
def test_vision_memory_script_runs_without_a_gpu(
    tiny_models: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """scripts/vision_memory.py, the GPU measurement users run, runs here on the tiny model."""
    import importlib.util

    path = Path(__file__).parents[3] / "scripts" / "vision_memory.py"
    spec = importlib.util.spec_from_file_location("vision_memory", path)
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    status = script.main(
        ["--model", "tiny", "--size", "64", "--steps", "1", "--variants", "none/no-t5,model/t5"]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "| none | False | none |" in out, out  # T5 off, loaded whole
    assert "| model | True | none |" in out, out  # offload asked for, not applied on CPU
    assert "FAILED" not in out

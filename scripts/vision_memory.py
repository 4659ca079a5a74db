"""Measure the vision route's GPU memory and speed for each offload / T5 choice.

Loads the pipeline through the host's own diffusion backend once per variant (offload
"none" / "model" / "sequential", T5 on / off), draws one image, unloads, and prints one
row per variant: load seconds, seconds per image and per step, peak GPU memory (torch's
allocator and NVML, sampled), host RSS while loaded, and the GPU memory still used after
the unload. Exits non-zero when a variant fails.

    # the real model (gated: accept its licence, HF_TOKEN set, or already in the cache)
    .venv/bin/python scripts/vision_memory.py --model stabilityai/stable-diffusion-3.5-medium
    # SD 3.5 Medium's architecture with random weights: no download, no licence
    # (writes 16.3 GB of safetensors to DIR once, ~10 GB of RAM; memory and speed are the real model's)
    .venv/bin/python scripts/vision_memory.py --random-weights /tmp/sd35m-random
    # a smoke run anywhere, CPU included (the tiny test pipeline; GPU columns say n/a)
    .venv/bin/python scripts/vision_memory.py --model tiny --size 64 --steps 2

Send back the printed table (and --json FILE's contents) with the GPU's name.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from llmhost.backends.base import ImageJob
from llmhost.backends.diffusion.backend import DiffusionBackend
from llmhost.config import HostConfig, parse_catalog
from llmhost.gpu.monitor import GpuMonitor, open_monitor
from llmhost.units import GIB

VARIANTS = [("none", True), ("none", False), ("model", True), ("model", False), ("sequential", True)]


class PeakSampler:
    """The highest NVML 'used' reading while running (every 20 ms)."""

    def __init__(self, monitor: GpuMonitor) -> None:
        self.monitor = monitor
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            memory = self.monitor.memory()
            if memory is not None:
                self.peak = max(self.peak, memory.used_bytes)
            self._stop.wait(0.02)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _gib(value: int | None) -> float | None:
    return None if value is None else round(value / GIB, 2)


async def measure(
    model: str, offload: str, t5: bool, size: int, steps: int, monitor: GpuMonitor
) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    catalog = parse_catalog(
        f'[routes.vision]\nkind = "diffusion"\nmodel = "{model}"\n[routes.vision.pipeline]\n'
        f'offload = "{offload}"\ntext_encoder_3 = {"true" if t5 else "false"}\nmax_edge = {max(size, 64)}\n'
    )
    backend = DiffusionBackend(catalog.routes["vision"], HostConfig())
    before = monitor.memory()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    row: dict[str, Any] = {"offload": offload, "t5": t5}
    started = time.perf_counter()
    try:
        with PeakSampler(monitor) as sampler:
            await backend.start()
            row["load_s"] = round(time.perf_counter() - started, 1)
            row["loaded_gpu_gib"] = _gib(torch.cuda.memory_allocated() if cuda else None)
            row["rss_gib"] = _gib(psutil.Process().memory_info().rss)
            job = ImageJob(
                prompt="a red fox in the snow, photograph", seed=1, steps=steps, guidance_scale=4.5
            )
            warm = await backend.generate(job)  # first image: kernels, allocator warm-up
            result = await backend.generate(job)
        row["first_image_s"] = round(warm.elapsed, 2)
        row["image_s"] = round(result.elapsed, 2)
        row["step_s"] = round(result.elapsed / steps, 3)
        row["peak_allocated_gib"] = _gib(torch.cuda.max_memory_allocated() if cuda else None)
        row["peak_reserved_gib"] = _gib(torch.cuda.max_memory_reserved() if cuda else None)
        row["peak_nvml_used_gib"] = _gib(sampler.peak) if before is not None else None
        row["applied_offload"] = backend.offload
    except Exception as exc:  # reported in the row; the exit status says so
        row["error"] = f"{type(exc).__name__}: {exc}"[:400]
    finally:
        await backend.stop()
        gc.collect()
    after = monitor.memory()
    row["nvml_used_before_gib"] = _gib(before.used_bytes) if before else None
    row["nvml_used_after_unload_gib"] = _gib(after.used_bytes) if after else None
    return row


def build_random_sd35_medium(dest: Path) -> Path:
    """SD 3.5 Medium's components, random weights, saved in diffusers format (once).

    Shapes from the model's published configs (MMDiT-X: 24 layers, 24 heads of 64, dual
    attention in layers 0-12, RMS qk-norm, 384 position grid; CLIP-L, OpenCLIP bigG,
    T5-v1.1-XXL encoder; 16-channel VAE). The tokenizers are the tiny test ones: the
    pipeline still pads to 77 CLIP and 256 T5 tokens, as with the real ones. One
    component at a time is built and written, in float16: ~10 GB of RAM at the most.
    """
    if (dest / "model_index.json").exists():
        return dest
    import shutil

    import torch
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from llmhost.tiny_models import ensure_tiny_models

    def clip(hidden: int, layers: int, heads: int, act: str) -> Any:
        return CLIPTextModelWithProjection(
            CLIPTextConfig(
                hidden_size=hidden,
                intermediate_size=4 * hidden,
                num_hidden_layers=layers,
                num_attention_heads=heads,
                projection_dim=hidden,
                vocab_size=49408,
                max_position_embeddings=77,
                hidden_act=act,
            )
        )

    builders: dict[str, Any] = {
        "transformer": lambda: SD3Transformer2DModel(
            sample_size=128,
            patch_size=2,
            in_channels=16,
            num_layers=24,
            attention_head_dim=64,
            num_attention_heads=24,
            joint_attention_dim=4096,
            caption_projection_dim=1536,
            pooled_projection_dim=2048,
            out_channels=16,
            pos_embed_max_size=384,
            dual_attention_layers=tuple(range(13)),
            qk_norm="rms_norm",
        ),
        "text_encoder": lambda: clip(768, 12, 12, "quick_gelu"),
        "text_encoder_2": lambda: clip(1280, 32, 20, "gelu"),
        "text_encoder_3": lambda: T5EncoderModel(
            T5Config(
                d_model=4096,
                d_ff=10240,
                d_kv=64,
                num_heads=64,
                num_layers=24,
                vocab_size=32128,
                feed_forward_proj="gated-gelu",
                is_encoder_decoder=False,
            )
        ),
        "vae": lambda: AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=16,
            sample_size=1024,
            scaling_factor=1.5305,
            shift_factor=0.0609,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
    }
    work = dest.with_name(dest.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tiny = ensure_tiny_models().sd3
    for name in ("tokenizer", "tokenizer_2", "tokenizer_3"):
        shutil.copytree(tiny / name, work / name)
    shutil.copy(tiny / "model_index.json", work / "model_index.json")  # the same classes
    scheduler: Any = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.save_pretrained(work / "scheduler")
    generator = torch.Generator().manual_seed(0)
    for name, build in builders.items():
        torch.set_default_dtype(torch.float16)  # T5-XXL alone is 19 GB in float32
        try:
            with init_empty_weights():  # parameters on "meta"; buffers real (position ids)
                part = build()
        finally:
            torch.set_default_dtype(torch.float32)
        buffers = {key: value.clone() for key, value in part.named_buffers()}
        part.to_empty(device="cpu")
        with torch.no_grad():
            for parameter in part.parameters():
                parameter.normal_(0.0, 0.02, generator=generator)
            for key, value in part.named_buffers():
                value.copy_(buffers[key])
        del buffers
        part.to(torch.float16)  # buffers computed in float32 (SD3's position embedding) too
        if hasattr(part, "tie_weights"):
            part.tie_weights()  # to_empty untied T5's shared embedding: saved twice otherwise
        part.save_pretrained(work / name)
        print(f"built {name}: {sum(p.numel() for p in part.parameters()) / 1e9:.3f} B parameters", flush=True)
        del part
    work.rename(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--model", default="stabilityai/stable-diffusion-3.5-medium", help="hub id, path, or 'tiny'"
    )
    source.add_argument(
        "--random-weights", type=Path, metavar="DIR", help="build SD 3.5 Medium's shapes in DIR"
    )
    parser.add_argument("--size", type=int, default=1024, help="image width and height (default 1024)")
    parser.add_argument("--steps", type=int, default=8, help="denoising steps per image (default 8)")
    parser.add_argument(
        "--variants",
        default=",".join(f"{o}/{'t5' if t else 'no-t5'}" for o, t in VARIANTS),
        help="comma-separated OFFLOAD/t5|no-t5 (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)

    if args.random_weights:
        model = str(build_random_sd35_medium(args.random_weights))
    elif args.model == "tiny":
        from llmhost.tiny_models import ensure_tiny_models

        model = str(ensure_tiny_models().sd3)
    else:
        model = args.model
    variants = []
    for item in args.variants.split(","):
        offload, _, t5 = item.strip().partition("/")
        variants.append((offload, t5 != "no-t5"))

    monitor = open_monitor()
    print(f"GPU: {monitor.name or 'none (' + str(monitor.unavailable_reason) + ')'}; model {model}")
    rows = []
    try:
        for offload, t5 in variants:
            row = asyncio.run(measure(model, offload, t5, args.size, args.steps, monitor))
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        monitor.close()

    columns = [
        "offload",
        "t5",
        "applied_offload",
        "load_s",
        "image_s",
        "step_s",
        "peak_allocated_gib",
        "peak_reserved_gib",
        "peak_nvml_used_gib",
        "rss_gib",
        "nvml_used_after_unload_gib",
    ]
    print(f"\n{args.size}x{args.size}, {args.steps} steps, second image of each load\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        cells = [str(row.get(c, "n/a") if row.get(c) is not None else "n/a") for c in columns]
        if "error" in row:
            cells[3] = "FAILED: " + row["error"]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

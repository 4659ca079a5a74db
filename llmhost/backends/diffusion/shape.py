"""What a loaded diffusers pipeline can draw, read from its components' configs."""

from __future__ import annotations

from typing import Any


def size_multiple(pipe: Any) -> int:
    """What width and height must divide by: the VAE's scale, times the patch size (SD3)."""
    scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    patch = getattr(pipe, "patch_size", None)
    if patch is None:
        transformer = getattr(pipe, "transformer", None)
        patch = getattr(getattr(transformer, "config", None), "patch_size", 1)
    return scale * int(patch or 1)


def model_max_edge(pipe: Any) -> int | None:
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


def native_size(pipe: Any) -> tuple[int, int]:
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

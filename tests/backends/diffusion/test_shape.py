"""What a pipeline can draw, read from its components' configs (llmhost.backends.diffusion.shape).

The pipelines here carry only the attributes diffusers' own pipelines set, with the values
of the checkpoints named (SD3's pipeline: `vae_scale_factor`, `patch_size` and
`default_sample_size` from its transformer's config; SD 1.5's: `vae_scale_factor` and a
UNet whose config has `sample_size`). The real tiny pipelines are read in test_backend.py.
"""

from __future__ import annotations

from types import SimpleNamespace

from llmhost.backends.diffusion.shape import model_max_edge, native_size, size_multiple


def _sd3(*, pos_embed_max_size: int | None = 192, on_pipe: bool = True) -> SimpleNamespace:
    """Stable Diffusion 3 medium: VAE scale 8, patch 2, 128 latent samples, a 192 grid."""
    config = SimpleNamespace(patch_size=2, sample_size=128, pos_embed_max_size=pos_embed_max_size)
    pipe = SimpleNamespace(vae_scale_factor=8, transformer=SimpleNamespace(config=config))
    if on_pipe:  # the pipeline copies them from its transformer
        pipe.patch_size, pipe.default_sample_size = 2, 128
    return pipe


def _sd15(sample_size: object = 64) -> SimpleNamespace:
    """Stable Diffusion 1.5: VAE scale 8, a UNet of 64 latent samples, no transformer."""
    return SimpleNamespace(
        vae_scale_factor=8, unet=SimpleNamespace(config=SimpleNamespace(sample_size=sample_size))
    )


def test_sd3_draws_multiples_of_16_natively_1024_and_at_most_its_grid() -> None:
    for pipe in (_sd3(), _sd3(on_pipe=False)):  # read from the pipeline or its transformer
        assert size_multiple(pipe) == 16  # the VAE's 8 times the patch's 2
        assert native_size(pipe) == (1024, 1024)
        assert model_max_edge(pipe) == 192 * 2 * 8  # the position-embedding grid, in pixels


def test_a_transformer_without_a_fixed_grid_has_no_model_limit() -> None:
    assert model_max_edge(_sd3(pos_embed_max_size=None)) is None


def test_sd15_draws_multiples_of_8_natively_512_without_a_model_limit() -> None:
    pipe = _sd15()
    assert (size_multiple(pipe), native_size(pipe), model_max_edge(pipe)) == (8, (512, 512), None)


def test_a_non_square_sample_size_is_height_then_width() -> None:
    # diffusers' sample_size as a pair is (height, width); native_size answers (width, height).
    assert native_size(_sd15([96, 64])) == (512, 768)


def test_a_pipeline_that_says_nothing_gets_the_defaults() -> None:
    pipe = SimpleNamespace()
    assert (size_multiple(pipe), native_size(pipe), model_max_edge(pipe)) == (8, (1024, 1024), None)

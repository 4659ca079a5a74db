"""Fixtures of the backend tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_sd15(tiny_models: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SD 1.x pipeline (UNet, 8x VAE, CLIP, safety checker) from the SD3 one's tokenizer."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny_models.sd3 / "tokenizer")
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
        "projection_dim": 32,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipe: Any = StableDiffusionPipeline(
            vae=AutoencoderKL(
                block_out_channels=(8, 8, 8, 8),  # four blocks: scale factor 8, like SD 1.5
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4,
                latent_channels=4,
                norm_num_groups=8,
                layers_per_block=1,
            ),
            text_encoder=CLIPTextModel(text),
            tokenizer=tokenizer,
            unet=UNet2DConditionModel(
                sample_size=8,
                block_out_channels=(32, 32),
                layers_per_block=1,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                cross_attention_dim=32,
                norm_num_groups=8,
                attention_head_dim=8,
            ),
            scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1),
            safety_checker=StableDiffusionSafetyChecker(
                CLIPConfig(text_config=text.to_dict(), vision_config=vision, projection_dim=32)
            ),
            feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
        )
    dest = tmp_path_factory.mktemp("sd15-tiny")
    pipe.save_pretrained(dest)
    return dest

"""The tiny SD3 pipeline (llmhost.tiny_models.sd3): diffusers loads it and draws 64 px."""

from __future__ import annotations

import pytest

from llmhost.tiny_models import TinyModels


@pytest.mark.engine
def test_sd3_pipeline_generates_64px(tiny: TinyModels) -> None:
    import numpy as np
    import torch
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(tiny.sd3)
    assert type(pipe).__name__ == "StableDiffusion3Pipeline"
    assert pipe.text_encoder_3 is not None and pipe.tokenizer_3 is not None
    assert pipe.vae.config.latent_channels == 16
    pipe.set_progress_bar_config(disable=True)

    image = pipe(
        "a red cat",
        num_inference_steps=2,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (64, 64)
    assert np.asarray(image).std() > 0, "a random pipeline still draws something"

"""The tiny image model: a random StableDiffusion3Pipeline shaped like SD 3.5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmhost.tiny_models.cache import RECIPE_VERSION, build_cached, seeded

_CLIP_MAX_LENGTH = 77


def _clip_tokenizer() -> Any:
    """A CLIP BPE tokenizer whose vocabulary is the byte alphabet (no merges)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = list(bytes_to_unicode().values())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab.update({ch + "</w>": len(alphabet) + i for i, ch in enumerate(alphabet)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=_CLIP_MAX_LENGTH)


def _t5_tokenizer() -> Any:
    """A T5 tokenizer over a small hand-made Unigram vocabulary."""
    import string

    from transformers import T5Tokenizer  # T5TokenizerFast in transformers 4

    chars = string.ascii_letters + string.digits + string.punctuation
    words = ("a", "the", "of", "cat", "dog", "photo", "painting", "red", "blue", "in")
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces.append(("▁", -2.0))
    pieces += [("▁" + w, -3.0) for w in words]
    pieces += [("▁" + c, -4.0) for c in chars]
    pieces += [(c, -5.0) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def build_tiny_sd3(dest: Path, *, seed: int = 0) -> Path:
    """Build (once) a tiny random StableDiffusion3Pipeline shaped like SD 3.5.

    One-layer MMDiT (with SD 3.5's dual attention and RMS qk-norm), a one-block
    AutoencoderKL with 16 latent channels (so ``vae_scale_factor`` is 1 and the default
    size is 64x64), two CLIP text encoders with projection sharing a byte-alphabet
    tokenizer, and a 2-layer T5 encoder: every component the real pipeline has, so it
    loads with ``AutoPipelineForText2Image.from_pretrained`` like the real one.
    """
    recipe: dict[str, Any] = {"kind": "sd3-tiny", "version": RECIPE_VERSION, "seed": seed}

    def build(out: Path) -> None:
        from diffusers import (
            AutoencoderKL,
            FlowMatchEulerDiscreteScheduler,
            SD3Transformer2DModel,
            StableDiffusion3Pipeline,
        )
        from transformers import (
            CLIPTextConfig,
            CLIPTextModelWithProjection,
            T5Config,
            T5EncoderModel,
        )

        clip_tokenizer = _clip_tokenizer()
        t5_tokenizer = _t5_tokenizer()
        clip_hidden, clip_projection, t5_model_dim = 32, 32, 64
        clip_config = CLIPTextConfig(
            vocab_size=len(clip_tokenizer),
            hidden_size=clip_hidden,
            intermediate_size=2 * clip_hidden,
            projection_dim=clip_projection,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=_CLIP_MAX_LENGTH,
            hidden_act="quick_gelu",
            bos_token_id=clip_tokenizer.bos_token_id,
            eos_token_id=clip_tokenizer.eos_token_id,
            pad_token_id=clip_tokenizer.pad_token_id,
        )
        t5_config = T5Config(
            vocab_size=len(t5_tokenizer),
            d_model=t5_model_dim,
            d_kv=32,
            d_ff=2 * t5_model_dim,
            num_layers=2,
            num_heads=2,
            relative_attention_num_buckets=8,
            feed_forward_proj="gated-gelu",
            is_encoder_decoder=False,
            use_cache=False,
            pad_token_id=t5_tokenizer.pad_token_id,
            eos_token_id=t5_tokenizer.eos_token_id,
        )
        with seeded(seed):
            text_encoder = CLIPTextModelWithProjection(clip_config)
            text_encoder_2 = CLIPTextModelWithProjection(clip_config)
            text_encoder_3 = T5EncoderModel(t5_config)
            transformer = SD3Transformer2DModel(
                sample_size=64,
                patch_size=2,
                in_channels=16,
                out_channels=16,
                num_layers=1,
                attention_head_dim=32,
                num_attention_heads=2,
                joint_attention_dim=t5_model_dim,
                caption_projection_dim=64,
                pooled_projection_dim=2 * clip_projection,
                pos_embed_max_size=96,
                dual_attention_layers=(0,),
                qk_norm="rms_norm",
            )
            vae = AutoencoderKL(
                in_channels=3,
                out_channels=3,
                down_block_types=("DownEncoderBlock2D",),
                up_block_types=("UpDecoderBlock2D",),
                block_out_channels=(32,),
                layers_per_block=1,
                latent_channels=16,
                norm_num_groups=8,
                sample_size=64,
                use_quant_conv=False,
                use_post_quant_conv=False,
                shift_factor=0.0609,
                scaling_factor=1.5305,
            )
        pipe: Any = StableDiffusion3Pipeline(
            transformer=transformer,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=clip_tokenizer,
            text_encoder_2=text_encoder_2,
            tokenizer_2=clip_tokenizer,
            text_encoder_3=text_encoder_3,
            tokenizer_3=t5_tokenizer,
        )
        pipe.save_pretrained(out)

    return build_cached(dest, recipe, build)

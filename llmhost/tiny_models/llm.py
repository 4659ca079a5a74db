"""The tiny LLM: a random Qwen2ForCausalLM, its output layer nudged to end replies.

Output is random text, of course, but the output layer is nudged (no training: a fixed
per-token bias) so that replies end by themselves and a forced tool call completes
within a few dozen tokens, as they do with a real model; see ``_nudge``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from llmhost.tiny_models.cache import RECIPE_VERSION, build_cached, seeded
from llmhost.tiny_models.tokenizer import (
    CHAT_TEMPLATE,
    EOS_TOKEN,
    LLM_MAX_POSITIONS,
    PAD_TOKEN,
    train_llm_tokenizer,
)

#: Output-layer nudges, in units of the untouched model's logit spread (see _nudge).
_NUDGE_CLOSERS = 1.25  # tokens holding '"' or '}': JSON strings and objects close
_NUDGE_WHITESPACE = -2.0  # whitespace-only tokens: no endless runs of JSON whitespace
_NUDGE_EOS = 1.0  # <|im_end|>: replies end by themselves, most within a few hundred tokens

#: Default ``max_tokens`` that vLLM takes from generation_config.json when a request sets
#: none (Open WebUI sends none): a bound on a reply, should one never reach the nudged eos.
_DEFAULT_MAX_NEW_TOKENS = 1024


def _nudge(model: Any, tokenizer: Any) -> None:
    """Bias a random model's output layer so its replies behave like a chat model's.

    Pure random weights give endless replies, and under a tool-call grammar an
    endless JSON string or run of whitespace, so a named ``tool_choice`` often hits
    ``max_tokens`` before the call is complete. Three nudges fix that without any
    training. Channel 0 of the residual stream is made a constant: every token embeds
    1.0 there and no layer writes to it (row 0 of ``o_proj`` and ``down_proj`` is zero),
    so the final hidden state's channel 0 is always positive. Column 0 of the (untied)
    ``lm_head`` then adds a fixed bias per token: up for eos and JSON closers, down for
    whitespace-only tokens, scaled by the logit spread measured on a sample prompt.
    """
    import torch

    bias = torch.zeros(len(tokenizer))
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        if text and not text.strip():
            bias[token_id] = _NUDGE_WHITESPACE
        elif '"' in text or "}" in text:
            bias[token_id] = _NUDGE_CLOSERS
    bias[tokenizer.convert_tokens_to_ids(EOS_TOKEN)] = _NUDGE_EOS

    sample = tokenizer.apply_chat_template(
        [{"role": "user", "content": "def fibonacci(n: int) -> int:"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        channel0 = float(model.model(sample).last_hidden_state[0, :, 0].mean())
        spread = float(model(sample).logits[0].std(dim=-1).mean())
        model.lm_head.weight[:, 0] = bias * (spread / channel0)


def build_tiny_llm(dest: Path, *, seed: int = 0, hidden_size: int = 64) -> Path:
    """Build (once) a tiny random Qwen2ForCausalLM with a Qwen2.5-style tokenizer.

    2 layers, 2 attention heads, 1 KV head (``head_dim = hidden_size // 2``: vLLM's CPU
    attention needs 32 or more), float32, untied embeddings, 32k positions; the output
    layer is nudged (see ``_nudge``) so replies end and tool calls complete. Returns
    ``dest``; does nothing when ``dest`` already holds this exact build.
    """
    if hidden_size % 2 or hidden_size // 2 < 32:
        raise ValueError("hidden_size must be even and at least 64 (head_dim >= 32)")
    recipe: dict[str, Any] = {
        "kind": "qwen2-tiny",
        "version": RECIPE_VERSION,
        "seed": seed,
        "hidden_size": hidden_size,
        "chat_template_sha256": hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest()[:16],
    }

    def build(out: Path) -> None:
        from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

        tokenizer = train_llm_tokenizer()
        eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
        pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
        config = Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=LLM_MAX_POSITIONS,
            max_window_layers=2,
            tie_word_embeddings=False,
            # Wider than the usual 0.02 so the logits are far from uniform: each model
            # then has its own preferred tokens, and two models are told apart by their
            # replies (greedy decoding of a near-uniform model repeats one token).
            initializer_range=0.3,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
            bos_token_id=pad_id,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
        with seeded(seed):
            model = Qwen2ForCausalLM(config).eval()
        _nudge(model, tokenizer)
        model.generation_config = GenerationConfig(
            bos_token_id=pad_id,
            eos_token_id=[eos_id, pad_id],
            pad_token_id=pad_id,
            max_new_tokens=_DEFAULT_MAX_NEW_TOKENS,
        )
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return build_cached(dest, recipe, build)

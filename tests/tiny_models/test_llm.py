"""The tiny LLMs (llmhost.tiny_models.llm): two distinct models, and a real vLLM engine on
CPU that generates with them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from llmhost.tiny_models import EOS_TOKEN, TinyModels, tiny_engine_args


def test_llm_and_alt_are_distinct_models(tiny: TinyModels, tokenizer: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    configs = [json.loads((p / "config.json").read_text()) for p in (tiny.llm, tiny.llm_alt)]
    assert [c["hidden_size"] for c in configs] == [64, 128]
    for config in configs:
        assert config["architectures"] == ["Qwen2ForCausalLM"]
        assert config["hidden_size"] // config["num_attention_heads"] >= 32
        assert config["num_key_value_heads"] == 1
        assert config["max_position_embeddings"] == 32768
        assert config["vocab_size"] >= len(tokenizer)

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Write a function that adds two numbers."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    replies = []
    for path in (tiny.llm, tiny.llm_alt):
        model: Any = AutoModelForCausalLM.from_pretrained(path)
        assert model.dtype == torch.float32
        with torch.no_grad():
            out = model.generate(prompt, max_new_tokens=400, do_sample=False)
        reply = out[0, prompt.shape[1] :].tolist()
        # The nudged output layer makes replies end by themselves.
        assert reply[-1] == eos_id, f"no eos in {len(reply)} tokens"
        replies.append(reply)
    assert replies[0] != replies[1]
    assert len(set(replies[0])) > 2, "greedy output should not be one repeated token"


@pytest.mark.engine
async def test_vllm_engine_generates(tiny: TinyModels, tokenizer: Any) -> None:
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    engine_args = AsyncEngineArgs(model=str(tiny.llm), **tiny_engine_args())
    engine = await asyncio.to_thread(AsyncLLM.from_engine_args, engine_args)

    async def run(prompt_ids: list[int], params: Any, request_id: str) -> Any:
        final = None
        async for output in engine.generate({"prompt_token_ids": prompt_ids}, params, request_id=request_id):
            final = output
        assert final is not None and final.finished
        return final.outputs[0]

    try:
        prompt_ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Say hello."}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
        )["input_ids"]
        fixed = await run(prompt_ids, SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True), "fixed")
        assert len(fixed.token_ids) == 8
        assert fixed.finish_reason == "length"
        assert all(0 <= t < len(tokenizer) for t in fixed.token_ids)
        assert fixed.text == tokenizer.decode(fixed.token_ids, skip_special_tokens=True)

        free = await run(prompt_ids, SamplingParams(max_tokens=1024, temperature=0.0), "free")
        assert free.finish_reason == "stop"
        assert 0 < len(free.token_ids) < 1024
        assert free.token_ids[:8] == fixed.token_ids, "greedy decoding is deterministic"

        # A prompt longer than the old 4k context: real clients send such prompts.
        long_prompt = tokenizer.encode("def add(a, b):\n    return a + b\n" * 400)
        assert len(long_prompt) > 4096
        long = await run(long_prompt, SamplingParams(max_tokens=4, ignore_eos=True), "long")
        assert len(long.token_ids) == 4
    finally:
        await asyncio.to_thread(engine.shutdown, timeout=30)

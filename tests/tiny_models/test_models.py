"""Tests for llmhost.tiny_models: cached builds, tokenizer and template, real loads."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmhost.tiny_models import (
    EOS_TOKEN,
    MARKER_NAME,
    NON_SPECIAL_TOKENS,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    TinyModels,
    build_tiny_llm,
    default_cache_dir,
    ensure_tiny_models,
    tiny_engine_args,
)

ALL_ADDED_TOKENS = (*SPECIAL_TOKENS, *NON_SPECIAL_TOKENS)

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("VLLM_NO_USAGE_STATS", "1")
        yield


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="module")
def tiny(cache_dir: Path) -> TinyModels:
    return ensure_tiny_models(cache_dir)


@pytest.fixture(scope="module")
def tokenizer(tiny: TinyModels) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny.llm)


def _file_stamps(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------ paths


def test_default_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMHOST_CACHE_DIR", str(tmp_path / "own"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "own" / "tiny-models"
    monkeypatch.delenv("LLMHOST_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "llmhost" / "tiny-models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "llmhost" / "tiny-models"


# ---------------------------------------------------------------------- caching


def test_layout_and_second_build_is_skipped(tiny: TinyModels, cache_dir: Path) -> None:
    assert tiny.llm == cache_dir / "qwen-tiny"
    assert tiny.llm_alt == cache_dir / "qwen-tiny-alt"
    assert tiny.sd3 == cache_dir / "sd3-tiny"
    for path in (tiny.llm, tiny.llm_alt, tiny.sd3):
        assert (path / MARKER_NAME).is_file()
    assert (tiny.sd3 / "model_index.json").is_file()
    assert not list(cache_dir.glob(".*.tmp-*")), "temporary build directories left behind"

    before = {p: _file_stamps(p) for p in (tiny.llm, tiny.llm_alt, tiny.sd3)}
    again = ensure_tiny_models(cache_dir)
    assert again == tiny
    after = {p: _file_stamps(p) for p in (tiny.llm, tiny.llm_alt, tiny.sd3)}
    assert after == before


def test_unfinished_build_is_redone_and_foreign_dir_refused(tmp_path: Path) -> None:
    dest = build_tiny_llm(tmp_path / "llm", seed=3)
    weights = _sha256(dest / "model.safetensors")
    # Simulate a build that died before its marker was written.
    (dest / MARKER_NAME).unlink()
    (dest / "tokenizer.json").unlink()
    build_tiny_llm(dest, seed=3)
    assert (dest / MARKER_NAME).is_file()
    assert (dest / "tokenizer.json").is_file()
    assert _sha256(dest / "model.safetensors") == weights, "same recipe, same weights"

    # Another recipe at the same place replaces the build.
    build_tiny_llm(dest, seed=4)
    assert json.loads((dest / MARKER_NAME).read_text())["recipe"]["seed"] == 4
    assert _sha256(dest / "model.safetensors") != weights

    foreign = tmp_path / "not-ours"
    foreign.mkdir()
    (foreign / "README.md").write_text("my notes")
    with pytest.raises(FileExistsError):
        build_tiny_llm(foreign)
    assert (foreign / "README.md").read_text() == "my notes"


def test_concurrent_builds_build_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    dest = tmp_path / "shared-llm"
    code = (
        "import sys, pathlib; from llmhost.tiny_models import build_tiny_llm; "
        "p = build_tiny_llm(pathlib.Path(sys.argv[1]), seed=5); "
        "print((p / '.complete').read_text())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(dest)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    markers = [json.loads(out) for out, _ in results]
    # One process built, the other waited on the lock and found the finished build.
    assert markers[0] == markers[1] == json.loads((dest / MARKER_NAME).read_text())
    assert not list(tmp_path.glob(".*.tmp-*"))


# ---------------------------------------------------------------- LLM contents


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


def test_added_tokens_are_single_ids(tiny: TinyModels, tokenizer: Any) -> None:
    ids = {}
    for token in ALL_ADDED_TOKENS:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        assert len(encoded) == 1, (token, encoded)
        assert tokenizer.convert_ids_to_tokens(encoded[0]) == token
        ids[token] = encoded[0]
    assert len(set(ids.values())) == len(ALL_ADDED_TOKENS)

    assert tokenizer.eos_token == EOS_TOKEN
    assert tokenizer.pad_token == PAD_TOKEN
    generation = json.loads((tiny.llm / "generation_config.json").read_text())
    assert ids[EOS_TOKEN] in generation["eos_token_id"]

    # What vLLM's parsers rely on: <think>/<tool_call> survive default decoding.
    text = "".join(ALL_ADDED_TOKENS) + "x = 1"
    decoded = tokenizer.decode(tokenizer.encode(text), skip_special_tokens=True)
    assert decoded == "".join(NON_SPECIAL_TOKENS) + "x = 1"

    code = "def add(a, b):\n    return a + b\n"
    assert tokenizer.decode(tokenizer.encode(code)) == code
    assert len(tokenizer.encode(code)) < len(code), "BPE should merge common code pieces"


def test_chat_template_renders_tools_calls_and_results(tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    # As OpenAI clients send it: arguments as a JSON string.
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "21 C, cloudy"},
    ]
    text = tokenizer.apply_chat_template(
        messages, tools=[WEATHER_TOOL], add_generation_prompt=True, tokenize=False
    )
    assert text.startswith("<|im_start|>system\nAnswer briefly.\n\n# Tools\n")
    tools_block = text.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    assert json.loads(tools_block) == WEATHER_TOOL

    calls = [
        json.loads(chunk.split("</tool_call>", 1)[0])
        for chunk in text.split("<|im_start|>assistant\n", 1)[1].split("<tool_call>\n")[1:]
    ]
    assert calls == [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Rome"}},
    ]
    # Consecutive tool results share one user turn.
    assert (
        "<|im_start|>user\n<tool_response>\n18 C, sunny\n</tool_response>\n"
        "<tool_response>\n21 C, cloudy\n</tool_response><|im_end|>\n"
    ) in text
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")

    plain = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=False, tokenize=False
    )
    assert "<tools>" not in plain
    assert plain.endswith("<|im_start|>user\nhi<|im_end|>\n")

    ids = tokenizer.apply_chat_template(messages, tools=[WEATHER_TOOL], tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids("<tool_call>")) >= 3


def test_vllm_parsers_accept_the_tokenizer(tiny: TinyModels) -> None:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.reasoning import ReasoningParserManager
    from vllm.tokenizers import get_tokenizer
    from vllm.tool_parsers import ToolParserManager

    tokenizer = get_tokenizer(str(tiny.llm))
    request = ChatCompletionRequest(
        model="tiny", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL]
    )

    reasoning: Any = ReasoningParserManager.get_reasoning_parser("deepseek_r1")(tokenizer)
    assert reasoning.start_token_id == tokenizer.convert_tokens_to_ids("<think>")
    assert reasoning.end_token_id == tokenizer.convert_tokens_to_ids("</think>")
    output = tokenizer.decode(
        tokenizer.encode("<think>plan it</think>the answer<|im_end|>", add_special_tokens=False),
        skip_special_tokens=True,
    )
    assert reasoning.extract_reasoning(output, request) == ("plan it", "the answer")

    hermes = ToolParserManager.get_tool_parser("hermes")(tokenizer)
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    output = tokenizer.decode(tokenizer.encode(call, add_special_tokens=False))
    extracted = hermes.extract_tool_calls(output, request)
    assert extracted.tools_called
    assert [c.function.name for c in extracted.tool_calls] == ["get_weather"]
    assert json.loads(extracted.tool_calls[0].function.arguments) == {"city": "Paris"}


# ---------------------------------------------------------------- real loads


def test_engine_args_are_plain_toml_values() -> None:
    args = tiny_engine_args()
    assert args["dtype"] == "float32"
    assert args["enforce_eager"] is True
    assert all(isinstance(v, (str, int, float, bool)) for v in args.values())

    from vllm.engine.arg_utils import AsyncEngineArgs

    fields = set(AsyncEngineArgs.__dataclass_fields__)
    assert set(args) <= fields, set(args) - fields


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


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmhost.tiny_models; "
        "heavy = {'torch', 'transformers', 'tokenizers', 'diffusers', 'vllm'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "[]"

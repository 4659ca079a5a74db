"""Tiny random-weight models, built locally in seconds, for tests and ``llmhost demo``.

Why this exists: the host's interesting parts (loading and swapping real vLLM engines,
vLLM's own chat templating, tool-call and reasoning parsing, a real diffusers pipeline)
can only be tested against real models, and the real ones are gigabytes that need a GPU
and a download. The models built here have the same *shape* as the production ones,
Qwen2.5-Instruct for the language routes and Stable Diffusion 3.5 for ``/vision``, but
random weights and tiny dimensions, so they load on vLLM's CPU backend and in diffusers
on a laptop, with no network access: everything is built from installed packages
(``transformers``, ``tokenizers``, ``diffusers``, ``torch``) and saved with
``save_pretrained`` like a model downloaded from the Hub.

The tokenizer keeps what the host relies on: ChatML markers, a Qwen2.5-style chat
template with hermes tool calls, ``<think>``/``</think>`` for vLLM's ``deepseek_r1``
reasoning parser, ``<tool_call>``/``</tool_call>`` for its ``hermes`` tool parser, and
the FIM markers code-completion clients send. Output is random text, of course, but
the output layer is nudged (no training: a fixed per-token bias) so that replies end
by themselves and a forced tool call completes within a few dozen tokens, as they do
with a real model; see ``_nudge``.

Builds are cached: each model directory gets a ``.complete`` marker, written last and
holding the build recipe, so a second call returns at once, an interrupted build is
redone, and a change to the recipe rebuilds. A build goes into a temporary sibling
directory that is renamed into place, under an ``fcntl`` lock, so concurrent processes
(pytest-xdist workers, two ``llmhost demo`` runs) build each model once.

Heavy libraries are imported inside the functions only: importing this module is cheap.

Run ``python -m llmhost.tiny_models [DIR]`` to build the set and print the paths.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CHAT_TEMPLATE",
    "EOS_TOKEN",
    "MARKER_NAME",
    "NON_SPECIAL_TOKENS",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "TinyModels",
    "build_tiny_llm",
    "build_tiny_sd3",
    "default_cache_dir",
    "ensure_tiny_models",
    "main",
    "tiny_engine_args",
]

#: Bump when a builder changes in a way that should invalidate cached builds (a change
#: of CHAT_TEMPLATE does so by itself: its hash is part of the LLM recipe).
RECIPE_VERSION = 2

#: Name of the file written last into a finished model directory.
MARKER_NAME = ".complete"

#: Control tokens: removed by ``skip_special_tokens=True`` decoding, like in Qwen2.5.
SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

#: Added tokens that must stay in decoded text, so they are *not* special (Qwen2.5 marks
#: them ``special: false`` too). vLLM's deepseek_r1 reasoning parser looks up ``<think>``
#: and ``</think>`` by id and, for non-streaming replies, splits the decoded text on
#: them; its hermes tool parser searches the decoded text for ``<tool_call>``. Decoding
#: skips special tokens by default, which would erase them.
NON_SPECIAL_TOKENS: tuple[str, ...] = (
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
)

EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"

#: Qwen2.5's pre-tokenizer split pattern (the GPT-4-style regex, single digits).
_QWEN_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: A Qwen2.5-Instruct style chat template: ChatML turns, tools listed in a ``<tools>``
#: block with hermes ``<tool_call>`` instructions, assistant tool calls rendered as
#: ``<tool_call>{json}</tool_call>``, consecutive ``role: "tool"`` messages grouped
#: into one user turn of ``<tool_response>`` blocks. Differences from the original,
#: for robustness only: arguments already given as a JSON string are not re-encoded,
#: and ``content: null`` renders as empty. Like the original it never loops over
#: ``content``, so vLLM detects the "string" content format and flattens text parts.
CHAT_TEMPLATE = r"""{%- macro text(content) -%}
    {%- if content is string -%}{{- content -}}{%- endif -%}
{%- endmacro -%}
{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- text(messages[0]['content']) }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + text(messages[0]['content']) + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + text(message.content) + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + text(message.content) }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {%- if tool_call.arguments is string %}
                {{- tool_call.arguments }}
            {%- else %}
                {{- tool_call.arguments | tojson }}
            {%- endif %}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- text(message.content) }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

#: What the BPE tokenizer is trained on: prose, code, and the JSON of tool calls, so
#: that typical prompts encode to a reasonable number of tokens.
_TRAINING_TEXT: tuple[str, ...] = (
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    "The quick brown fox jumps over the lazy dog. What is the weather in Paris today?",
    "Hello! How can I help you today? Let me think about that step by step.",
    "def fibonacci(n: int) -> int:\n    if n < 2:\n        return n\n"
    "    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "import os\nimport sys\n\nfor path in sys.argv[1:]:\n    print(os.path.abspath(path))\n",
    "class Greeter:\n    def __init__(self, name):\n        self.name = name\n\n"
    "    def greet(self):\n        return f'Hello, {self.name}!'\n",
    "function add(a, b) {\n  return a + b;\n}\nconst total = [1, 2, 3].reduce(add, 0);\n",
    '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
    '{"type": "function", "function": {"name": "search", "description": "Search the web", '
    '"parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}',
    "SELECT id, name FROM users WHERE active = 1 ORDER BY name;",
    "# Tools\n\nYou may call one or more functions to assist with the user query.",
)

_CLIP_MAX_LENGTH = 77
_LLM_MAX_POSITIONS = 32768
_MIB = 1024 * 1024


# --------------------------------------------------------------------------- paths


def default_cache_dir() -> Path:
    """Where tiny models are cached by default.

    ``$LLMHOST_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/llmhost``, else
    ``~/.cache/llmhost``; then ``tiny-models`` under it.
    """
    root = os.environ.get("LLMHOST_CACHE_DIR")
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "llmhost"
    return base / "tiny-models"


# --------------------------------------------------------------- cached, atomic builds


def _read_marker(dest: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((dest / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_built(dest: Path, recipe: dict[str, Any]) -> bool:
    marker = _read_marker(dest)
    return marker is not None and marker.get("recipe") == recipe


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on a sibling lock file of ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock_path = dest.parent / f".{dest.name}.lock"
    with open(lock_path, "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


#: Every top-level name the builders write: a directory holding only these (and no
#: marker) is an unfinished build, e.g. from an older, non-atomic version of this code.
_BUILD_OUTPUT_NAMES = frozenset(
    {
        MARKER_NAME,
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "special_tokens_map.json",
        "model_index.json",
        "scheduler",
        "text_encoder",
        "text_encoder_2",
        "text_encoder_3",
        "tokenizer",
        "tokenizer_2",
        "tokenizer_3",
        "transformer",
        "vae",
    }
)


def _check_replaceable(dest: Path) -> None:
    """Refuse to build over something at ``dest`` that these builders did not make.

    Replaceable: nothing there, an empty directory, a finished build of another recipe
    (it has the marker), or an unfinished one (only names the builders write). Anything
    else is someone's data and is left alone.
    """
    if not dest.exists() and not dest.is_symlink():
        return
    if dest.is_dir() and not dest.is_symlink():
        names = {p.name for p in dest.iterdir()}
        if MARKER_NAME in names or names <= _BUILD_OUTPUT_NAMES:
            return
    raise FileExistsError(f"{dest} exists and is not a tiny-model build; refusing to replace it")


def _build_cached(dest: Path, recipe: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp_dir)`` unless ``dest`` already holds this recipe's build.

    The build writes into a temporary sibling directory; the marker is written last
    and the directory renamed into place, all under a lock, so readers never see a
    half-written model and concurrent callers build once. A build of another recipe
    (older version, other seed) at ``dest`` is replaced.
    """
    dest = Path(dest).expanduser().absolute()
    if _is_built(dest, recipe):
        return dest
    with _locked(dest):
        if _is_built(dest, recipe):  # another process finished it while we waited
            return dest
        _check_replaceable(dest)
        # Leftovers of a build that was killed mid-way (we hold the lock: none is live).
        for leftover in dest.parent.glob(f".{dest.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        try:
            tmp.chmod(0o755)  # mkdtemp makes it 0700; the result should read like any model
            with _quiet_saving():
                build(tmp)
            marker = {"recipe": recipe, "built_at": time.time()}
            (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=2), encoding="utf-8")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


@contextlib.contextmanager
def _quiet_saving() -> Iterator[None]:
    """Hide transformers' per-shard progress bars while saving many tiny files."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch for weight init without disturbing the caller's RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ------------------------------------------------------------------------ tiny LLM


def _train_llm_tokenizer() -> Any:
    """A byte-level BPE tokenizer shaped like Qwen2.5's, trained on a few lines."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    bpe.train_from_iterator(list(_TRAINING_TEXT) * 4, trainer)
    state = json.loads(bpe.to_str())
    vocab: dict[str, int] = state["model"]["vocab"]
    # The BPE model takes (left, right) pairs; byte-level tokens never contain a space.
    merges: list[Any] = [
        tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]
    ]

    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=_LLM_MAX_POSITIONS,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [t for t in SPECIAL_TOKENS if t != PAD_TOKEN]})
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in NON_SPECIAL_TOKENS])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


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

        tokenizer = _train_llm_tokenizer()
        eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
        pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
        config = Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=_LLM_MAX_POSITIONS,
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
        with _seeded(seed):
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

    return _build_cached(dest, recipe, build)


# ----------------------------------------------------------------------- tiny SD3


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
        with _seeded(seed):
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

    return _build_cached(dest, recipe, build)


# ----------------------------------------------------------------------- the set


@dataclass(frozen=True)
class TinyModels:
    """Paths of the built tiny models."""

    llm: Path
    llm_alt: Path
    sd3: Path


def ensure_tiny_models(cache_dir: Path | None = None) -> TinyModels:
    """Build (once, cached) two distinct tiny LLMs and the tiny SD3 pipeline.

    ``llm`` has hidden size 64 (head_dim 32); ``llm_alt`` has another seed and hidden
    size 128 (head_dim 64), so a swap between the two is visible in logs and outputs.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return TinyModels(
        llm=build_tiny_llm(root / "qwen-tiny", seed=0, hidden_size=64),
        llm_alt=build_tiny_llm(root / "qwen-tiny-alt", seed=1, hidden_size=128),
        sd3=build_tiny_sd3(root / "sd3-tiny", seed=0),
    )


def tiny_engine_args() -> dict[str, object]:
    """vLLM engine arguments under which these tiny models run on the CPU backend.

    ``dtype="float32"``: ``auto`` would turn the weights into bf16. ``enforce_eager``:
    no torch.compile / graph capture (slow to start, nothing to gain). An explicit
    ``kv_cache_memory_bytes`` (64 MiB, about 130k tokens for ``llm``): without it the
    CPU worker reserves ``gpu_memory_utilization`` (0.9) of the machine's RAM, and with
    it and eager mode vLLM also skips its warm-up pass. The context matches the models'
    32k positions, since real clients send long prompts. All values are plain TOML
    scalars, to sit under ``[routes.X.engine]``.
    """
    return {
        "dtype": "float32",
        "enforce_eager": True,
        "max_model_len": _LLM_MAX_POSITIONS,
        "kv_cache_memory_bytes": 64 * _MIB,
    }


# ------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m llmhost.tiny_models [DIR]``: build the tiny models and print paths."""
    parser = argparse.ArgumentParser(
        prog="python -m llmhost.tiny_models",
        description="Build tiny random-weight models for tests and the demo (cached).",
    )
    parser.add_argument(
        "cache_dir",
        nargs="?",
        type=Path,
        default=None,
        help=f"where to build them (default: {default_cache_dir()})",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    models = ensure_tiny_models(args.cache_dir)
    elapsed = time.perf_counter() - started
    print(f"llm:     {models.llm}")
    print(f"llm_alt: {models.llm_alt}")
    print(f"sd3:     {models.sd3}")
    print(f"({elapsed:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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

Builds are cached and atomic (``cache``); one module per job: ``tokenizer`` (with
``chat_template.jinja``), ``llm``, ``sd3``, ``models`` (the set and its engine
arguments), ``pooling`` (an embedder and a cross-encoder for embedding and rerank
routes), ``cli``.

Heavy libraries are imported inside the functions only: importing this module is cheap.

Run ``python -m llmhost.tiny_models [DIR]`` to build the set and print the paths.
"""

from llmhost.tiny_models.cache import MARKER_NAME, RECIPE_VERSION, default_cache_dir
from llmhost.tiny_models.cli import main
from llmhost.tiny_models.llm import build_tiny_llm
from llmhost.tiny_models.models import TinyModels, ensure_tiny_models, tiny_engine_args
from llmhost.tiny_models.pooling import TinyPoolingModels, ensure_tiny_pooling_models
from llmhost.tiny_models.sd3 import build_tiny_sd3
from llmhost.tiny_models.tokenizer import (
    CHAT_TEMPLATE,
    EOS_TOKEN,
    NON_SPECIAL_TOKENS,
    PAD_TOKEN,
    SPECIAL_TOKENS,
)

__all__ = [
    "CHAT_TEMPLATE",
    "EOS_TOKEN",
    "MARKER_NAME",
    "NON_SPECIAL_TOKENS",
    "PAD_TOKEN",
    "RECIPE_VERSION",
    "SPECIAL_TOKENS",
    "TinyModels",
    "TinyPoolingModels",
    "build_tiny_llm",
    "build_tiny_sd3",
    "default_cache_dir",
    "ensure_tiny_models",
    "ensure_tiny_pooling_models",
    "main",
    "tiny_engine_args",
]

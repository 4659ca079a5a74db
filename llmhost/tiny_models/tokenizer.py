"""The tiny LLM's tokenizer: byte-level BPE shaped like Qwen2.5's, with its chat template.

It keeps what the host relies on: ChatML markers, a Qwen2.5-style chat template with
hermes tool calls (``chat_template.jinja`` beside this module), ``<think>``/``</think>``
for vLLM's ``deepseek_r1`` reasoning parser, ``<tool_call>``/``</tool_call>`` for its
``hermes`` tool parser, and the FIM markers code-completion clients send.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

#: Context length of the tiny LLMs, in tokens (the tokenizer's ``model_max_length``).
LLM_MAX_POSITIONS = 32768

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
CHAT_TEMPLATE = (
    resources.files("llmhost.tiny_models").joinpath("chat_template.jinja").read_text(encoding="utf-8")
)

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


def train_llm_tokenizer() -> Any:
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
        model_max_length=LLM_MAX_POSITIONS,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [t for t in SPECIAL_TOKENS if t != PAD_TOKEN]})
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in NON_SPECIAL_TOKENS])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer

"""Tiny pooling models for embedding and rerank routes, shaped like the ones models.toml
suggests: an embedder like Qwen3-Embedding (a Qwen3ForCausalLM with a sentence-transformers
config asking for last-token pooling and normalization, which is what makes vLLM pool it
as "embed") and a cross-encoder like bge-reranker-v2-m3 (an
XLMRobertaForSequenceClassification with one label, which vLLM scores as "classify").

Random weights: the vectors and scores mean nothing, but their shapes, the API around them
and the engines that make them are the real ones. Hidden size 64 with head_dim 32 (vLLM's
CPU attention needs 32 or more).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmhost.tiny_models.cache import RECIPE_VERSION, build_cached, default_cache_dir, seeded
from llmhost.tiny_models.tokenizer import EOS_TOKEN, LLM_MAX_POSITIONS, PAD_TOKEN, train_llm_tokenizer

#: The embedder's vector size (its hidden size): what /v1/embeddings returns per input.
EMBEDDER_HIDDEN_SIZE = 64
#: The cross-encoder's context (XLM-RoBERTa keeps two positions for its padding offset).
RERANKER_MAX_POSITIONS = 512

# sentence-transformers' module list for a last-token-pooled, normalized embedder, as
# Qwen3-Embedding ships it (vLLM reads modules.json and the pooling module's config.json).
_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
_POOLING = {
    "word_embedding_dimension": EMBEDDER_HIDDEN_SIZE,
    "pooling_mode_cls_token": False,
    "pooling_mode_mean_tokens": False,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
    "pooling_mode_weightedmean_tokens": False,
    "pooling_mode_lasttoken": True,
    "include_prompt": True,
}


@dataclass(frozen=True)
class TinyPoolingModels:
    """Paths of the built tiny pooling models."""

    embedder: Path
    reranker: Path


def ensure_tiny_pooling_models(cache_dir: Path | None = None) -> TinyPoolingModels:
    """Build (once, cached) the tiny embedder and the tiny cross-encoder."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return TinyPoolingModels(
        embedder=build_tiny_embedder(root / "qwen3-embedding-tiny"),
        reranker=build_tiny_reranker(root / "xlmr-reranker-tiny"),
    )


def build_tiny_embedder(dest: Path, *, seed: int = 0) -> Path:
    """A random Qwen3ForCausalLM (2 layers, hidden 64) with Qwen3-Embedding's
    sentence-transformers files and the tiny LLM's tokenizer."""
    recipe: dict[str, Any] = {"kind": "qwen3-embedding-tiny", "version": RECIPE_VERSION, "seed": seed}

    def build(out: Path) -> None:
        from transformers import Qwen3Config, Qwen3ForCausalLM

        tokenizer = train_llm_tokenizer()
        pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
        config = Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=EMBEDDER_HIDDEN_SIZE,
            intermediate_size=2 * EMBEDDER_HIDDEN_SIZE,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=EMBEDDER_HIDDEN_SIZE // 2,
            max_position_embeddings=LLM_MAX_POSITIONS,
            tie_word_embeddings=True,  # as Qwen3-Embedding-0.6B
            bos_token_id=pad_id,
            eos_token_id=tokenizer.convert_tokens_to_ids(EOS_TOKEN),
            pad_token_id=pad_id,
        )
        with seeded(seed):
            model = Qwen3ForCausalLM(config).eval()
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / "modules.json").write_text(json.dumps(_MODULES, indent=2), encoding="utf-8")
        (out / "1_Pooling").mkdir()
        (out / "1_Pooling" / "config.json").write_text(json.dumps(_POOLING, indent=2), encoding="utf-8")
        (out / "2_Normalize").mkdir()
        (out / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": LLM_MAX_POSITIONS, "do_lower_case": False}), encoding="utf-8"
        )

    return build_cached(dest, recipe, build)


def _reranker_tokenizer() -> Any:
    """An XLM-RoBERTa tokenizer over a small hand-made Unigram vocabulary: its pair
    template (`<s> A </s></s> B </s>`) is what a cross-encoder reads query and document by."""
    from transformers import XLMRobertaTokenizer  # the fast tokenizer in transformers 5

    chars = string.ascii_letters + string.digits + string.punctuation
    words = ("the", "of", "is", "a", "what", "capital", "france", "paris", "weather", "dog", "cat")
    pieces: list[tuple[str, float]] = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces.append(("▁", -2.0))
    pieces += [("▁" + w, -3.0) for w in words]
    pieces += [("▁" + c, -4.0) for c in chars]
    pieces += [(c, -5.0) for c in chars]
    pieces.append(("<mask>", 0.0))
    return XLMRobertaTokenizer(vocab=pieces, model_max_length=RERANKER_MAX_POSITIONS - 2)


def build_tiny_reranker(dest: Path, *, seed: int = 0) -> Path:
    """A random XLMRobertaForSequenceClassification with one label (2 layers, hidden 64),
    the shape of bge-reranker-v2-m3."""
    recipe: dict[str, Any] = {"kind": "xlmr-reranker-tiny", "version": RECIPE_VERSION, "seed": seed}

    def build(out: Path) -> None:
        from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

        tokenizer = _reranker_tokenizer()
        config = XLMRobertaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=RERANKER_MAX_POSITIONS,
            type_vocab_size=1,
            num_labels=1,  # one relevance logit: what vLLM's rerank (score) API takes
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        with seeded(seed):
            model = XLMRobertaForSequenceClassification(config).eval()
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return build_cached(dest, recipe, build)

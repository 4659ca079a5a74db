"""Can vLLM pool the model of an embedding or rerank route? Decided from the model's
config.json (a local directory or the Hugging Face cache) and vLLM's model registry read
from its source (llmhost.vllm_source.models): no vLLM import, no download, milliseconds.

`llmhost check` and reloads refuse what certainly fails, with the reason (llmhost.preflight.model
calls this); a model whose files are not here yet is left to the load, which checks again
with vLLM's own answer (llmhost.backends.vllm.pooling). What vLLM does, per kind:

- embedding: vLLM serves /v1/embeddings when the model's pooling task is "embed": an
  embedding architecture (`XLMRobertaModel`, `BertModel`, ...), or a language model
  converted with `convert="embed"`, which is what its sentence-transformers config
  (modules.json) asks for (Qwen3-Embedding is a `Qwen3ForCausalLM`). A classifier pools
  as "classify" and has no embeddings endpoint.
- rerank: vLLM's score API takes a cross-encoder (`...ForSequenceClassification` with one
  label), a late-interaction model (ColBERT), or an embedding model (cosine similarity).

Escape hatches are vLLM's own: `convert`, `hf_overrides` or `pooler_config` in [engine]
say the user knows better than the file, and the check steps aside.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmhost.config import RouteConfig
from llmhost.vllm_source import version
from llmhost.vllm_source.models import Architectures, architectures

# [engine] keys that change how vLLM pools a model: with any of them the user decides.
_OVERRIDES = ("convert", "hf_overrides", "pooler_config")
_CLASSIFIER_SUFFIXES = ("ForSequenceClassification", "ClassificationModel")
_GENERATIVE_SUFFIXES = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel", "ChatModel")


def problem(route: RouteConfig, cache_dir: Path | None = None) -> str | None:
    """Why vLLM cannot serve this embedding or rerank route's model, or None (it can, or
    its files are not here to tell)."""
    if not route.pooling:
        return None
    archs = architectures()
    if archs is None:  # no vLLM source here: nothing to check against
        return None
    from llmhost.estimate.files import Directory, locate

    files, _ = locate(route, cache_dir, False, "config.json")
    if not isinstance(files, Directory):  # not here (the Hub is not asked): nothing to read
        return None
    config = files.json("config.json")
    if config is None:
        if files.json("model_index.json") is not None:
            return f"{route.model} is a diffusers pipeline, not a model vLLM can pool (route '{route.name}')"
        return None
    # modules.json (a JSON list): vLLM's sign of a sentence-transformers model.
    sentence_transformers = (files.root / "modules.json").is_file()
    reason = pooling_problem(route.kind, config, sentence_transformers, route.engine, archs)
    return None if reason is None else f"{reason} (route '{route.name}')"


def pooling_problem(
    kind: str,
    config: Mapping[str, Any],
    sentence_transformers: bool,
    engine: Mapping[str, Any],
    archs: Architectures,
) -> str | None:
    """Why vLLM cannot serve `kind` ("embedding" or "rerank") from a model with this
    config.json, or None. Pure: the decision without the file system."""
    if any(key in engine for key in _OVERRIDES):
        return None
    names = config.get("architectures")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return None  # vLLM decides from other fields; nothing certain to say here
    arch = str(names[0])
    vllm = f"vLLM {version()}" if version() else "vLLM"
    if not any(archs.resolves(n) for n in names):
        if config.get("auto_map") or engine.get("model_impl") == "transformers":
            return None  # remote code or the Transformers backend: only a load can tell
        return (
            f"{vllm} has no implementation of {arch} (not in its model registry), so it cannot "
            f'pool this model; if transformers implements it, engine.model_impl = "transformers" '
            "lets vLLM try its Transformers backend"
        )
    role = _role(arch, archs)
    if role == "token_classify":
        return (
            f"{arch} is a token classifier or reward model: vLLM serves neither embeddings nor rerank from it"
        )
    if kind == "embedding":
        if role == "classify":
            return (
                f"{arch} is a classifier (a cross-encoder): vLLM pools it as 'classify' and serves no "
                'embeddings from it; serve it as kind = "rerank"'
            )
        if role == "generate" and not sentence_transformers:
            return (
                f"{arch} is a generative language model with no sentence-transformers pooling config "
                "(modules.json), not an embedding model: vLLM would embed with its last hidden state, "
                'which is no trained embedding; use an embedding model, or set engine.convert = "embed" '
                "to do it anyway"
            )
        return None
    if role == "classify":
        labels = _num_labels(config)
        if labels != 1:
            return (
                f"{arch} has {labels} labels: vLLM's rerank (score) API takes a cross-encoder with one "
                "label (num_labels = 1)"
            )
        return None
    if role == "generate" and not sentence_transformers:
        return (
            f"{arch} is a generative language model, not a cross-encoder: vLLM reranks with a "
            "...ForSequenceClassification model of one label or an embedding model; rerankers built "
            "on a language model (Qwen3-Reranker) need engine.hf_overrides as vLLM's docs give them"
        )
    return None


def _role(arch: str, archs: Architectures) -> str:
    """What vLLM does with `arch` by default: generate, embed, classify, late_interaction
    or token_classify. The registry's explicit roles first, then the name's suffix."""
    for role in ("classify", "late_interaction", "token_classify"):
        if arch in getattr(archs, role):
            return role
    # Before "embed": vLLM lists some language models as embedding ones too (gte-Qwen2 is a
    # Qwen2ForCausalLM), which only their sentence-transformers config makes embedders.
    if arch in archs.generate or arch.endswith(_GENERATIVE_SUFFIXES):
        return "generate"
    if arch in archs.embed:
        return "embed"
    if arch.endswith(_CLASSIFIER_SUFFIXES):
        return "classify"
    if arch.endswith("ForTokenClassification"):
        return "token_classify"
    default = archs.default(arch)
    return "embed" if default is not None and default[1] == "embed" else "generate"


def _num_labels(config: Mapping[str, Any]) -> int:
    """The labels transformers gives the config: num_labels, else id2label's size, else 2."""
    value = config.get("num_labels")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    id2label = config.get("id2label")
    return len(id2label) if isinstance(id2label, Mapping) and id2label else 2

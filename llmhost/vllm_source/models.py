"""The model architectures vLLM implements, by what it does with them, read from its model
registry (vllm/model_executor/models/registry.py) and its architecture-suffix defaults
(`_SUFFIX_TO_DEFAULTS` in vllm/config/model.py): what `llmhost check` needs to say whether
vLLM can pool a model, without importing vLLM."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache

from llmhost.vllm_source.source import module_ast

_REGISTRY = "vllm.model_executor.models.registry"
_MODEL_CONFIG = "vllm.config.model"

# The registry's tables, by role (their names in vLLM 0.32).
_TABLES = {
    "generate": ("_TEXT_GENERATION_MODELS", "_TRANSFORMERS_SUPPORTED_MODELS", "_MULTIMODAL_MODELS"),
    "embed": ("_EMBEDDING_MODELS",),
    "classify": ("_SEQUENCE_CLASSIFICATION_MODELS",),
    "late_interaction": ("_LATE_INTERACTION_MODELS",),
    "token_classify": ("_TOKEN_CLASSIFICATION_MODELS", "_REWARD_MODELS"),
}


@dataclass(frozen=True)
class Architectures:
    """vLLM's architecture names by role, and its (suffix, runner, convert) defaults."""

    generate: frozenset[str]
    embed: frozenset[str]
    classify: frozenset[str]
    late_interaction: frozenset[str]
    token_classify: frozenset[str]
    suffixes: tuple[tuple[str, str, str], ...]

    @property
    def known(self) -> frozenset[str]:
        return self.generate | self.embed | self.classify | self.late_interaction | self.token_classify

    def default(self, arch: str) -> tuple[str, str] | None:
        """(runner, convert) vLLM assumes for an architecture by its name's suffix."""
        for suffix, runner, convert in self.suffixes:
            if arch.endswith(suffix):
                return runner, convert
        return None

    def resolves(self, arch: str) -> bool:
        """Whether vLLM has a class for `arch`, directly or by converting the base model
        the name's suffix points at (`Qwen3ForSequenceClassification` -> `Qwen3ForCausalLM`:
        the registry's `_normalize_arch`)."""
        if arch in self.known:
            return True
        for suffix, _, _ in self.suffixes:
            if arch.endswith(suffix):
                return any(arch.replace(suffix, other) in self.known for other, _, _ in self.suffixes)
        return False


def _assigned(tree: ast.Module, name: str) -> ast.expr | None:
    """The value of the top-level assignment to `name` (annotated or not), if any."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node.value
    return None


def _dict_keys(tree: ast.Module, name: str) -> set[str]:
    value = _assigned(tree, name)
    if not isinstance(value, ast.Dict):
        return set()
    return {k.value for k in value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}


def _suffixes(tree: ast.Module) -> tuple[tuple[str, str, str], ...]:
    """`_SUFFIX_TO_DEFAULTS = [("ForCausalLM", ("generate", "none")), ...]`, in order."""
    value = _assigned(tree, "_SUFFIX_TO_DEFAULTS")
    try:
        entries = ast.literal_eval(value) if value is not None else []
        return tuple((str(s), str(r), str(c)) for s, (r, c) in entries)
    except (ValueError, TypeError):
        return ()


@cache
def architectures() -> Architectures | None:
    """vLLM's architectures by role, or None without vLLM's source (nothing to check)."""
    registry, model_config = module_ast(_REGISTRY), module_ast(_MODEL_CONFIG)
    if registry is None or model_config is None:
        return None
    roles = {
        role: frozenset().union(*(_dict_keys(registry, t) for t in tables))
        for role, tables in _TABLES.items()
    }
    suffixes = _suffixes(model_config)
    if not roles["generate"] or not roles["embed"] or not suffixes:
        return None  # another layout of vLLM's source: do not guess
    return Architectures(suffixes=suffixes, **roles)

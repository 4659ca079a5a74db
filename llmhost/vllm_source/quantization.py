"""Quantization methods vLLM knows, and the ones it has deprecated."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import cache
from typing import Any

from llmhost.config_text import as_toml
from llmhost.vllm_source.field_types import annotation_accepts
from llmhost.vllm_source.source import definition, suggest, vllm_name

_QUANTIZATION = "vllm.model_executor.layers.quantization"


def _literal_list(module: str, name: str) -> tuple[str, ...] | None:
    found = definition(module, name)
    if found is None:
        return None
    stmt = found[1]
    value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
    if isinstance(value, ast.Subscript):  # Literal["awq", ...]
        accepts = annotation_accepts(value, found[0])
        strings = tuple(v for v in accepts.literals if isinstance(v, str))
        return strings if strings and not accepts.anything else None
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        return tuple(e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return None


@cache
def quantization_methods() -> tuple[str, ...] | None:
    """vLLM's QuantizationMethods, or None when they cannot be read."""
    return _literal_list(_QUANTIZATION, "QuantizationMethods")


@cache
def _deprecated_quantization() -> tuple[str, ...]:
    return _literal_list(_QUANTIZATION, "DEPRECATED_QUANTIZATION_METHODS") or ()


def quantization_problem(value: str, engine: Mapping[str, Any]) -> str | None:
    methods = quantization_methods()
    method = value.lower()  # vLLM lower-cases it (ModelConfig.validate_quantization_before)
    if methods is None:
        return None
    if method in ("bitsandbytes", "bnb"):
        return (
            f"quantization = {as_toml(value)}: bitsandbytes is not a quantization method of {vllm_name()} "
            "(vLLM 0.32 removed it). "
            'Use a pre-quantized AWQ or GPTQ checkpoint as the route\'s model (e.g. a "-AWQ" repo '
            'such as Qwen/Qwen2.5-Coder-7B-Instruct-AWQ) with quantization = "awq" or "gptq", '
            "or leave quantization unset: vLLM reads the method from the checkpoint's config"
        )
    if method not in methods:
        close = suggest(method, methods)
        hint = f"did you mean {as_toml(close)}? " if close else ""
        return (
            f"quantization = {as_toml(value)} is not a quantization method of {vllm_name()}; {hint}"
            f"it knows {', '.join(methods)}"
        )
    if method in _deprecated_quantization() and engine.get("allow_deprecated_quantization") is not True:
        return (
            f"quantization = {as_toml(value)} is deprecated in {vllm_name()}; "
            "set allow_deprecated_quantization = true to use it anyway"
        )
    return None

"""Quantization methods vLLM knows, and the ones it has deprecated."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import cache
from typing import Any

from llmhost.config.text import as_toml
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


@cache
def online_quantization() -> dict[str, str | None] | None:
    """vLLM's online quantization shorthands (`quantization = "fp8_per_channel"`, ...): each
    name and the weight quantization key it gives linear layers, or None where it leaves
    them unquantized (the MoE-only shorthands). Read from `_ONLINE_SHORTHANDS` in
    vllm/config/quantization.py; None when it cannot be read."""
    found = definition("vllm.config.quantization", "_ONLINE_SHORTHANDS")
    stmt = found[1] if found else None
    value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
    if not isinstance(value, ast.Dict):
        return None
    shorthands: dict[str, str | None] = {}
    for key, spec in zip(value.keys, value.values, strict=False):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(spec, ast.Call)):
            continue
        linear = next((k.value for k in spec.keywords if k.arg == "linear"), None)
        weight = (
            next((k.value for k in linear.keywords if k.arg == "weight"), None)
            if isinstance(linear, ast.Call)
            else None
        )
        shorthands[key.value] = weight.id if isinstance(weight, ast.Name) else None
    return shorthands or None

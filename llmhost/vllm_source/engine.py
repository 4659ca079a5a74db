"""Engine keys: the fields of `EngineArgs` / `AsyncEngineArgs`, their types and bounds."""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from llmhost.config.text import as_toml
from llmhost.vllm_source.field_types import ANY, Accepts, annotation_accepts
from llmhost.vllm_source.parsers import parser_problem
from llmhost.vllm_source.quantization import quantization_problem
from llmhost.vllm_source.source import ARG_UTILS, definition, module_ast, vllm_name

_CLASSES = ("EngineArgs", "AsyncEngineArgs")
# What vLLM's own CLI accepts as a size for max_model_len besides the numbers
# (utils/argparse_utils.py: human_readable_int_or_auto).
_HUMAN_INT = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_OPS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "ge": ("≥", operator.ge),
    "gt": (">", operator.gt),
    "le": ("≤", operator.le),
    "lt": ("<", operator.lt),
}
_HINTS = {
    "gpu_memory_utilization": " (a fraction of the card's total memory, such as 0.8)",
    "max_model_len": " (tokens, such as 8192)",
}


@dataclass(frozen=True)
class EngineField:
    name: str
    annotation: ast.expr
    default: ast.expr | None


@cache
def _fields() -> dict[str, EngineField] | None:
    tree = module_ast(ARG_UTILS)
    if tree is None:
        return None
    fields: dict[str, EngineField] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in _CLASSES:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    fields[item.target.id] = EngineField(item.target.id, item.annotation, item.value)
    return fields or None


def known() -> frozenset[str] | None:
    """Field names of AsyncEngineArgs, or None when vLLM is not installed."""
    fields = _fields()
    return frozenset(fields) if fields is not None else None


def unknown(keys: Iterable[str]) -> list[str]:
    """The keys AsyncEngineArgs would reject (empty when vLLM is absent: nothing to check)."""
    fields = known()
    if fields is None:
        return []
    return sorted(k for k in keys if k not in fields)


@cache
def _accepts_field(name: str) -> Accepts:
    fields = _fields()
    field = fields.get(name) if fields else None
    return annotation_accepts(field.annotation, ARG_UTILS) if field else ANY


@cache
def _bounds(name: str) -> tuple[tuple[str, float], ...]:
    """The numeric bounds (ge/gt/le/lt) vLLM's config class puts on engine field `name`:
    EngineArgs' default `CacheConfig.x` or `get_field(CacheConfig, "x")` names the field."""
    fields = _fields()
    field = fields.get(name) if fields else None
    default = field.default if field else None
    owner = attr = None
    if isinstance(default, ast.Attribute) and isinstance(default.value, ast.Name):
        owner, attr = default.value.id, default.attr
    elif (
        isinstance(default, ast.Call)
        and isinstance(default.func, ast.Name)
        and default.func.id == "get_field"
        and len(default.args) == 2
        and isinstance(default.args[0], ast.Name)
        and isinstance(default.args[1], ast.Constant)
    ):
        owner, attr = default.args[0].id, str(default.args[1].value)
    found = definition(ARG_UTILS, owner) if owner else None
    if found is None or not isinstance(found[1], ast.ClassDef):
        return ()
    for item in found[1].body:
        if (
            isinstance(item, ast.AnnAssign)
            and isinstance(item.target, ast.Name)
            and item.target.id == attr
            and isinstance(item.value, ast.Call)
        ):
            func = item.value.func
            if (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)) != "Field":
                return ()
            bounds = []
            for keyword in item.value.keywords:
                if keyword.arg in ("ge", "gt", "le", "lt"):
                    number = _number(keyword.value)
                    if number is not None:
                        bounds.append((keyword.arg, number))
            return tuple(bounds)
    return ()


def _number(node: ast.expr) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return -inner if inner is not None else None
    return None


@cache
def _human_readable_ints() -> frozenset[str]:
    """Engine fields vLLM's CLI reads as sizes such as "32k" (arg_utils: human_readable_int_args)."""
    tree = module_ast(ARG_UTILS)
    names = {"max_model_len"} if tree is not None else set()
    for node in ast.walk(tree) if tree is not None else ():
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "human_readable_int_args" for t in node.targets)
            and isinstance(node.value, (ast.Set, ast.List, ast.Tuple))
        ):
            names |= {
                e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
    return frozenset(names)


def _human_int(key: str, text: str) -> int | None:
    """`text` read as vLLM's CLI reads it for `key` ("32k" -> 32000, "1K" -> 1024; "auto"
    is -1 for max_model_len), or None."""
    value = text.strip()
    if key == "max_model_len" and (value == "-1" or value.lower() == "auto"):
        return -1
    match = _HUMAN_INT.fullmatch(value)
    if match:
        number, suffix = match.groups()
        if suffix in _DECIMAL:
            return int(float(number) * _DECIMAL[suffix])
        return int(number) * _BINARY[suffix] if number.isdigit() else None
    return int(value) if re.fullmatch(r"-?\d+", value) else None


def _check(key: str, value: Any, engine: Mapping[str, Any]) -> tuple[Any, str | None]:
    """`value` as the engine gets it, and what is wrong with it (None: nothing)."""
    accepts = _accepts_field(key)
    if isinstance(value, str) and key in _human_readable_ints() and "str" not in accepts.types:
        number = _human_int(key, value)
        if number is None:
            auto = ', "auto"' if key == "max_model_len" else ""
            return value, (
                f"{key} = {as_toml(value)}: {vllm_name()} expects an integer{_HINTS.get(key, '')} or a size "
                f'as its command line reads it ("32k" = 32000, "32K" = 32768{auto})'
            )
        value = number
    elif not accepts.allows(value):
        return (
            value,
            f"{key} = {as_toml(value)}: {vllm_name()} expects {accepts.describe()}{_HINTS.get(key, '')}",
        )
    bounds = _bounds(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not all(_OPS[op][1](value, limit) for op, limit in bounds):
            rule = " and ".join(f"{_OPS[op][0]} {limit:g}" for op, limit in bounds)
            return value, f"{key} = {as_toml(value)}: {vllm_name()} requires {rule}{_HINTS.get(key, '')}"
    if key == "quantization" and isinstance(value, str):
        return value, quantization_problem(value, engine)
    if key == "reasoning_parser" and isinstance(value, str) and value:
        problem = parser_problem("reasoning", value)
        return value, f"{key} = {problem}" if problem else None
    return value, None


def check_engine(engine: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """`engine` as AsyncEngineArgs should get it ("32k" sizes become integers) and the
    problems of its known keys, as (key, message). Unknown keys are left to `unknown`;
    without vLLM nothing is checked."""
    fields = _fields()
    values = dict(engine)
    if fields is None:
        return values, []
    problems = []
    for key, value in engine.items():
        if key not in fields:
            continue
        values[key], problem = _check(key, value, engine)
        if problem:
            problems.append((key, problem))
    return values, problems

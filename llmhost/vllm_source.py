"""What vLLM accepts, read from its installed source without importing it.

Importing vLLM takes about 6 s, far too long for `llmhost check` or for start-up (the host
must answer /healthz within 2 s). What `check` validates against is plain Python in vLLM's
source, so it is read with `ast`, once per process, and only the files a config needs:

- engine keys and their types: the fields of `EngineArgs` / `AsyncEngineArgs`
  (vllm/engine/arg_utils.py). Type aliases such as `ModelDType` or `CacheDType` are followed
  through the imports into vllm/config/*.py; numeric bounds come from the `Field(gt=..,
  le=..)` of the config class a field's default is taken from (`CacheConfig.
  gpu_memory_utilization` -> `Field(default=.., gt=0, le=1)`).
- quantization methods: `QuantizationMethods` and `DEPRECATED_QUANTIZATION_METHODS`
  (vllm/model_executor/layers/quantization/__init__.py).
- tool and reasoning parsers: the lazy registration tables in vllm/tool_parsers/__init__.py
  and vllm/reasoning/__init__.py (what `vllm serve --tool-call-parser` accepts).

Every lookup returns None (nothing to check) where vLLM is not installed or its source has
another shape; a field whose annotation is not a simple type (int, float, bool, str,
Literal[...], unions of these and None) is not checked.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

_ARG_UTILS = "vllm.engine.arg_utils"
_CLASSES = ("EngineArgs", "AsyncEngineArgs")
_QUANTIZATION = "vllm.model_executor.layers.quantization"
_SIMPLE = ("int", "float", "bool", "str")
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


@cache
def _root() -> Path | None:
    try:
        spec = importlib.util.find_spec("vllm")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


@cache
def _module(name: str) -> ast.Module | None:
    """The parsed source of vLLM module `name` ("vllm.config.cache"), or None."""
    root = _root()
    if root is None or not name.startswith("vllm"):
        return None
    base = root.joinpath(*name.split(".")[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        try:
            return ast.parse(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, SyntaxError, ValueError):
            return None
    return None


@cache
def version() -> str | None:
    """The installed vLLM's version (vllm/_version.py), or None."""
    root = _root()
    try:
        text = (root / "_version.py").read_text(encoding="utf-8") if root else ""
    except OSError:
        return None
    match = re.search(r"""\bversion\s*=\s*['"]([^'"]+)['"]""", text)
    return match.group(1) if match else None


def _vllm() -> str:
    found = version()
    return f"vLLM {found}" if found else "vLLM"


def _definition(module: str, name: str, depth: int = 0) -> tuple[str, ast.stmt] | None:
    """Where `name`, as seen from `module`, is defined: a top-level class or assignment,
    followed through `from X import name` (including re-exports in package __init__s)."""
    tree = _module(module)
    if tree is None or depth > 4:
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return module, node
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return module, node
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return module, node
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _definition(node.module, alias.name, depth + 1)
    return None


# ---- engine fields ------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepts:
    """The values a field's annotation allows, as far as a TOML value can be checked."""

    types: frozenset[str] = frozenset()  # of int, float, bool, str, none
    literals: tuple[Any, ...] = ()
    anything: bool = False  # a complex or unknown annotation: not checked

    def __or__(self, other: Accepts) -> Accepts:
        return Accepts(
            self.types | other.types, self.literals + other.literals, self.anything or other.anything
        )

    def allows(self, value: Any) -> bool:
        if self.anything:
            return True
        if any(type(value) is type(lit) and value == lit for lit in self.literals):
            return True
        if isinstance(value, bool):
            return "bool" in self.types
        if isinstance(value, int):
            return "int" in self.types or "float" in self.types
        if isinstance(value, float):
            return "float" in self.types
        if isinstance(value, str):
            return "str" in self.types
        return False

    def describe(self) -> str:
        words = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
        parts = [words[t] for t in _SIMPLE if t in self.types and not (t == "int" and "float" in self.types)]
        if self.literals:
            parts.append("one of " + ", ".join(_toml(v) for v in self.literals))
        return " or ".join(parts) or "a value vLLM can read"


_ANY = Accepts(anything=True)


def _accepts(node: ast.expr | None, module: str, depth: int = 0) -> Accepts:
    """What the annotation `node` (in `module`) allows; `anything` where it cannot tell."""
    if node is None or depth > 8:
        return _ANY
    if isinstance(node, ast.Constant):
        if node.value is None:
            return Accepts(frozenset({"none"}))
        if isinstance(node.value, str):  # a string annotation: 'dict[str, Any] | None'
            try:
                return _accepts(ast.parse(node.value, mode="eval").body, module, depth + 1)
            except SyntaxError:
                return _ANY
        return _ANY
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _accepts(node.left, module, depth + 1) | _accepts(node.right, module, depth + 1)
    if isinstance(node, ast.Subscript):
        head = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", None)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head == "Literal":
            result = Accepts()
            for arg in args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, (str, int, float, bool)):
                    result = result | Accepts(literals=(arg.value,))
                else:  # a nested alias: Literal["auto", RunnerType]
                    result = result | _accepts(arg, module, depth + 1)
            return result
        if head in ("Union", "Optional"):
            result = Accepts(frozenset({"none"})) if head == "Optional" else Accepts()
            for arg in args:
                result = result | _accepts(arg, module, depth + 1)
            return result
        return _ANY  # list[...], dict[...], type[...]: not checked
    if isinstance(node, ast.Name):
        if node.id in _SIMPLE:
            return Accepts(frozenset({node.id}))
        found = _definition(module, node.id)
        if found is None:
            return _ANY
        where, stmt = found
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            return _accepts(stmt.value, where, depth + 1)
        return _ANY  # a class (config object, enum): not checked
    return _ANY


@dataclass(frozen=True)
class EngineField:
    name: str
    annotation: ast.expr
    default: ast.expr | None


@cache
def _fields() -> dict[str, EngineField] | None:
    tree = _module(_ARG_UTILS)
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


def suggest(key: str, choices: Iterable[str]) -> str | None:
    """The choice closest to a misspelt `key`, if one is close."""
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.75)
    return close[0] if close else None


@cache
def _accepts_field(name: str) -> Accepts:
    fields = _fields()
    field = fields.get(name) if fields else None
    return _accepts(field.annotation, _ARG_UTILS) if field else _ANY


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
    found = _definition(_ARG_UTILS, owner) if owner else None
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
    tree = _module(_ARG_UTILS)
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


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _check(key: str, value: Any, engine: Mapping[str, Any]) -> tuple[Any, str | None]:
    """`value` as the engine gets it, and what is wrong with it (None: nothing)."""
    accepts = _accepts_field(key)
    if isinstance(value, str) and key in _human_readable_ints() and "str" not in accepts.types:
        number = _human_int(key, value)
        if number is None:
            auto = ', "auto"' if key == "max_model_len" else ""
            return value, (
                f"{key} = {_toml(value)}: {_vllm()} expects an integer{_HINTS.get(key, '')} or a size "
                f'as its command line reads it ("32k" = 32000, "32K" = 32768{auto})'
            )
        value = number
    elif not accepts.allows(value):
        return value, f"{key} = {_toml(value)}: {_vllm()} expects {accepts.describe()}{_HINTS.get(key, '')}"
    bounds = _bounds(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not all(_OPS[op][1](value, limit) for op, limit in bounds):
            rule = " and ".join(f"{_OPS[op][0]} {limit:g}" for op, limit in bounds)
            return value, f"{key} = {_toml(value)}: {_vllm()} requires {rule}{_HINTS.get(key, '')}"
    if key == "quantization" and isinstance(value, str):
        return value, _quantization_problem(value, engine)
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


# ---- quantization -------------------------------------------------------------------------


def _literal_list(module: str, name: str) -> tuple[str, ...] | None:
    found = _definition(module, name)
    if found is None:
        return None
    stmt = found[1]
    value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
    if isinstance(value, ast.Subscript):  # Literal["awq", ...]
        accepts = _accepts(value, found[0])
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


def _quantization_problem(value: str, engine: Mapping[str, Any]) -> str | None:
    methods = quantization_methods()
    method = value.lower()  # vLLM lower-cases it (ModelConfig.validate_quantization_before)
    if methods is None:
        return None
    if method in ("bitsandbytes", "bnb"):
        return (
            f"quantization = {_toml(value)}: bitsandbytes is not a quantization method of {_vllm()} "
            "(vLLM 0.32 removed it). "
            'Use a pre-quantized AWQ or GPTQ checkpoint as the route\'s model (e.g. a "-AWQ" repo '
            'such as Qwen/Qwen2.5-Coder-7B-Instruct-AWQ) with quantization = "awq" or "gptq", '
            "or leave quantization unset: vLLM reads the method from the checkpoint's config"
        )
    if method not in methods:
        close = suggest(method, methods)
        hint = f"did you mean {_toml(close)}? " if close else ""
        return (
            f"quantization = {_toml(value)} is not a quantization method of {_vllm()}; {hint}"
            f"it knows {', '.join(methods)}"
        )
    if method in _deprecated_quantization() and engine.get("allow_deprecated_quantization") is not True:
        return (
            f"quantization = {_toml(value)} is deprecated in {_vllm()}; "
            "set allow_deprecated_quantization = true to use it anyway"
        )
    return None


# ---- parsers ------------------------------------------------------------------------------


def _registered(module: str) -> frozenset[str] | None:
    """Names registered in a vLLM parser package's __init__: the keys of its lazy
    registration table (`_TOOL_PARSERS_TO_REGISTER = {"hermes": (...), ...}`) and any
    literal `register_lazy_module("name", ...)` / `register_module("name")` call."""
    tree = _module(module)
    if tree is None:
        return None
    names: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Dict)
            and any(isinstance(t, ast.Name) and t.id.endswith("_TO_REGISTER") for t in node.targets)
        ):
            names |= {
                k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
            }
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("register_lazy_module", "register_module"):
                first = (
                    node.args[0]
                    if node.args
                    else next((k.value for k in node.keywords if k.arg == "name"), None)
                )
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
    return frozenset(names) or None


@cache
def tool_parsers() -> frozenset[str] | None:
    """Tool-call parser names vLLM registers (vllm/tool_parsers/__init__.py), or None."""
    return _registered("vllm.tool_parsers")


@cache
def reasoning_parsers() -> frozenset[str] | None:
    """Reasoning parser names vLLM registers (vllm/reasoning/__init__.py), or None."""
    return _registered("vllm.reasoning")


def parser_problem(kind: str, name: str) -> str | None:
    """What is wrong with parser `name` of `kind` ("tool" or "reasoning"); None: fine or unknown."""
    names = tool_parsers() if kind == "tool" else reasoning_parsers()
    if names is None or name in names:
        return None
    close = suggest(name, names) or next(iter(difflib.get_close_matches(name, names, n=1, cutoff=0.6)), None)
    hint = f"did you mean {_toml(close)}? " if close else ""
    return f"{_toml(name)} is not a {kind} parser of {_vllm()}; {hint}it knows {', '.join(sorted(names))}"

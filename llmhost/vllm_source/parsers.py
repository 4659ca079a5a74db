"""Tool-call and reasoning parsers: the lazy registration tables `vllm serve` accepts."""

from __future__ import annotations

import ast
import difflib
from functools import cache

from llmhost.config.text import as_toml
from llmhost.vllm_source.source import module_ast, suggest, vllm_name


def _registered(module: str) -> frozenset[str] | None:
    """Names registered in a vLLM parser package's __init__: the keys of its lazy
    registration table (`_TOOL_PARSERS_TO_REGISTER = {"hermes": (...), ...}`) and any
    literal `register_lazy_module("name", ...)` / `register_module("name")` call."""
    tree = module_ast(module)
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
    hint = f"did you mean {as_toml(close)}? " if close else ""
    known = ", ".join(sorted(names))
    return f"{as_toml(name)} is not a {kind} parser of {vllm_name()}; {hint}it knows {known}"

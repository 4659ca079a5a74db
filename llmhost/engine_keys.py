"""The keys vLLM's `AsyncEngineArgs` accepts, read without importing vLLM.

Importing vLLM takes about 6 s, far too long for `llmhost check` or for start-up
(the host must answer /healthz within 2 s). The argument classes are plain
dataclasses, so their field names can be read from the installed source with `ast`.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable
from functools import cache
from pathlib import Path

_CLASSES = ("EngineArgs", "AsyncEngineArgs")


@cache
def known() -> frozenset[str] | None:
    """Field names of AsyncEngineArgs, or None when vLLM is not installed."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or spec.origin is None:
        return None
    source = Path(spec.origin).parent / "engine" / "arg_utils.py"
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in _CLASSES:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
    return frozenset(names) or None


def unknown(keys: Iterable[str]) -> list[str]:
    """The keys AsyncEngineArgs would reject (empty when vLLM is absent: nothing to check)."""
    fields = known()
    if fields is None:
        return []
    return sorted(k for k in keys if k not in fields)

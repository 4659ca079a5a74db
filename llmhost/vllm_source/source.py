"""vLLM's installed source, parsed with `ast` once per process: modules and definitions."""

from __future__ import annotations

import ast
import difflib
import importlib.util
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

ARG_UTILS = "vllm.engine.arg_utils"


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
def module_ast(name: str) -> ast.Module | None:
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


def vllm_name() -> str:
    found = version()
    return f"vLLM {found}" if found else "vLLM"


def definition(module: str, name: str, depth: int = 0) -> tuple[str, ast.stmt] | None:
    """Where `name`, as seen from `module`, is defined: a top-level class or assignment,
    followed through `from X import name` (including re-exports in package __init__s)."""
    tree = module_ast(module)
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
                    return definition(node.module, alias.name, depth + 1)
    return None


# ---- naming things in messages ------------------------------------------------------------


def suggest(key: str, choices: Iterable[str]) -> str | None:
    """The choice closest to a misspelt `key`, if one is close."""
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.75)
    return close[0] if close else None

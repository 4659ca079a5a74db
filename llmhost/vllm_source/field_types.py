"""What a field's annotation in vLLM's source allows, as far as a TOML value can be checked."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from llmhost.config.text import as_toml
from llmhost.vllm_source.source import definition

_SIMPLE = ("int", "float", "bool", "str")


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
            parts.append("one of " + ", ".join(as_toml(v) for v in self.literals))
        return " or ".join(parts) or "a value vLLM can read"


ANY = Accepts(anything=True)


def annotation_accepts(node: ast.expr | None, module: str, depth: int = 0) -> Accepts:
    """What the annotation `node` (in `module`) allows; `anything` where it cannot tell."""
    if node is None or depth > 8:
        return ANY
    if isinstance(node, ast.Constant):
        if node.value is None:
            return Accepts(frozenset({"none"}))
        if isinstance(node.value, str):  # a string annotation: 'dict[str, Any] | None'
            try:
                return annotation_accepts(ast.parse(node.value, mode="eval").body, module, depth + 1)
            except SyntaxError:
                return ANY
        return ANY
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return annotation_accepts(node.left, module, depth + 1) | annotation_accepts(
            node.right, module, depth + 1
        )
    if isinstance(node, ast.Subscript):
        head = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", None)
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head == "Literal":
            result = Accepts()
            for arg in args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, (str, int, float, bool)):
                    result = result | Accepts(literals=(arg.value,))
                else:  # a nested alias: Literal["auto", RunnerType]
                    result = result | annotation_accepts(arg, module, depth + 1)
            return result
        if head in ("Union", "Optional"):
            result = Accepts(frozenset({"none"})) if head == "Optional" else Accepts()
            for arg in args:
                result = result | annotation_accepts(arg, module, depth + 1)
            return result
        return ANY  # list[...], dict[...], type[...]: not checked
    if isinstance(node, ast.Name):
        if node.id in _SIMPLE:
            return Accepts(frozenset({node.id}))
        found = definition(module, node.id)
        if found is None:
            return ANY
        where, stmt = found
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            return annotation_accepts(stmt.value, where, depth + 1)
        return ANY  # a class (config object, enum): not checked
    return ANY

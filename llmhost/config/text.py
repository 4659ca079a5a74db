"""Writing models.toml text: the one writer, for the demo, the benchmark and the tests.

Values are written as TOML literals (a JSON string is a valid TOML basic string), tables
as `[header]` with their scalars first and one `[header.key]` sub-table per dict value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def toml_value(value: Any) -> str:
    """`value` as a TOML literal: booleans, numbers, strings, arrays and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def as_toml(value: Any) -> str:
    """`value` as models.toml spells it, for messages about it: TOML for booleans and
    strings, Python's repr for anything else (numbers, and values TOML has no word for)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def toml_assignments(values: Mapping[str, Any]) -> list[str]:
    """`key = value` lines: the body of a table."""
    return [f"{key} = {toml_value(value)}" for key, value in values.items()]


def toml_table(header: str, values: Mapping[str, Any]) -> list[str]:
    """`[header]` with its scalars, then a `[header.key]` sub-table for each dict value."""
    lines = [f"[{header}]", *toml_assignments({k: v for k, v in values.items() if not isinstance(v, dict)})]
    for key, sub in values.items():
        if isinstance(sub, dict):
            lines += ["", f"[{header}.{key}]", *toml_assignments(sub)]
    return lines


def models_toml(
    host: Mapping[str, Any], routes: Mapping[str, Mapping[str, Any]], *, comment: str | None = None
) -> str:
    """A whole models.toml: an optional comment line, `[host]`, then `[routes.NAME]` per route."""
    lines = [f"# {comment}"] if comment else []
    lines += toml_table("host", host)
    for name, table in routes.items():
        lines += ["", *toml_table(f"routes.{name}", table)]
    return "\n".join(lines) + "\n"

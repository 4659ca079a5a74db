"""A rejected models.toml explained in one paragraph: the file, the table, the key, a fix."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from llmhost.config.host import HostConfig, SearchConfig
from llmhost.config.route import PipelineConfig, RouteConfig, ServingConfig
from llmhost.config.text import as_toml


def explain_errors(source: str, exc: ValidationError, raw: Mapping[str, Any], prefix: str = "") -> str:
    problems = []
    seen: set[str] = set()
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if err["type"] == "engine_values" and len(loc) >= 2:  # RouteConfig._engine: (key, text) pairs
            for _, text in err["ctx"]["problems"]:
                # The same mistake in several routes (quantization = "bitsandbytes"): explain it once.
                short = text.split(": ", 1)[0] + ": as above" if text in seen and ": " in text else text
                problems.append(f"[routes.{loc[1]}.engine] {short}")
                seen.add(text)
            continue
        where = _where(loc)
        msg = _TYPE_MESSAGES.get(err["type"], err["msg"].removeprefix("Value error, "))
        if "{value}" in msg:
            msg = msg.format(value=as_toml(err.get("input")))
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(loc[-1], _keys_at(loc[:-1]), n=1, cutoff=0.6)
            msg = f"unknown key '{loc[-1]}'" + (f"; did you mean `{close[0]}`?" if close else "")
        problems.append(f"{where}: {msg}" if where else msg)
    lead = f"{source}: {prefix}" if prefix else f"{source}: "
    text = "; ".join(problems)
    return lead + text + ("" if text.endswith((".", "?")) else ".")


# Pydantic's wording for a value of the wrong type, in the terms of a TOML file.
_TYPE_MESSAGES = {
    "string_type": "must be a string (in quotes), not {value}",
    "tuple_type": 'must be a list of strings, such as ["a", "b"], not {value}',
    "list_type": 'must be a list of strings, such as ["a", "b"], not {value}',
    "int_type": "must be an integer, not {value}",
    "int_parsing": "must be an integer, not {value}",
    "int_from_float": "must be an integer, not {value}",
    "float_type": "must be a number, not {value}",
    "float_parsing": "must be a number, not {value}",
    "bool_type": "must be true or false, not {value}",
    "bool_parsing": "must be true or false, not {value}",
    "dict_type": "must be a table, not {value}",
    "model_type": "must be a table, not {value}",
    "model_attributes_type": "must be a table, not {value}",
}


def _keys_at(loc: list[str]) -> list[str]:
    """The keys the table at `loc` accepts (for "did you mean")."""
    model: type[BaseModel] | None = None
    if loc == ["host"]:
        model = HostConfig
    elif loc == ["search"]:
        model = SearchConfig
    elif len(loc) == 2 and loc[0] == "routes":
        model = RouteConfig
    elif len(loc) == 3 and loc[0] == "routes":
        tables: dict[str, type[BaseModel]] = {"serving": ServingConfig, "pipeline": PipelineConfig}
        model = tables.get(loc[2])
    return [name for name in model.model_fields if name != "name"] if model else []


def _where(loc: list[str]) -> str:
    if len(loc) >= 2 and loc[0] == "routes":
        route = loc[1]
        rest = loc[2:]
        table = f"[routes.{route}"
        if rest and rest[0] in ("engine", "serving", "pipeline"):
            table += f".{rest[0]}"
            rest = rest[1:]
        table += "]"
        return f"{table} {'.'.join(rest)}".strip() if rest else f"route '{route}' {table}"
    if loc and loc[0] == "host":
        return f"[host] {'.'.join(loc[1:])}".strip()
    if loc and loc[0] == "search":
        return f"[search] {'.'.join(loc[1:])}".strip()
    return ".".join(loc)

"""The whole routing table: parsed from TOML, cross-checked, frozen."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    ValidationError,
    model_validator,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from llmhost.config.base import ConfigError, Frozen
from llmhost.config.explain import explain_errors
from llmhost.config.host import HostConfig, SearchConfig
from llmhost.config.route import RouteConfig


class Catalog(Frozen):
    """The validated routing table: host options plus routes by name."""

    host: HostConfig = Field(default_factory=HostConfig)
    routes: dict[str, RouteConfig]
    search: SearchConfig = Field(default_factory=SearchConfig)
    source: str = "models.toml"

    @model_validator(mode="after")
    def _cross_checks(self) -> Catalog:
        owner: dict[str, str] = {}
        for route in self.routes.values():
            for model_id in route.model_ids:
                other = owner.get(model_id)
                if other is not None and other != route.name:
                    raise ValueError(
                        f"served name '{model_id}' is used by both routes '{other}' and '{route.name}'"
                    )
                owner[model_id] = route.name
        for name in self.host.prewarm:
            if name not in self.routes:
                raise ValueError(f"prewarm names route '{name}', which is not defined")
        return self

    def find(self, model_id: str) -> RouteConfig | None:
        """The route serving `model_id` (a served name or a route name), if any."""
        for route in self.routes.values():
            if model_id in route.model_ids:
                return route
        return None

    def with_overrides(self, host: Mapping[str, Any], routes: Mapping[str, Mapping[str, Any]]) -> Catalog:
        """A new catalog with host options and per-route fields replaced (environment overrides)."""
        data = self.model_dump()
        data["host"].update(host)
        for name, fields in routes.items():
            merged = data["routes"][name]
            for key, value in fields.items():
                if isinstance(value, Mapping):
                    merged[key] = {**merged.get(key, {}), **value}
                else:
                    merged[key] = value
        try:
            return Catalog.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(
                explain_errors(self.source, exc, data, prefix="after environment overrides, ")
            ) from None


def parse_catalog(text: str, source: str = "models.toml") -> Catalog:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}.") from None
    unknown_top = sorted(set(raw) - {"host", "routes", "search"})
    if unknown_top:
        close = difflib.get_close_matches(unknown_top[0], ["host", "routes", "search"], n=1, cutoff=0.6)
        raise ConfigError(
            f"{source}: unknown top-level table(s) {', '.join(unknown_top)}; "
            "expected [host], [routes.NAME] and [search]"
            + (f"; did you mean `{close[0]}`?" if close else ".")
        )
    routes = raw.get("routes")
    if not isinstance(routes, dict) or not routes:
        raise ConfigError(f"{source}: no routes defined; add at least one [routes.NAME] table.")
    data: dict[str, Any] = {"host": raw.get("host", {}), "routes": {}, "source": source}
    if "search" in raw:
        data["search"] = raw["search"]
    for name, table in routes.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: routes.{name} must be a table ([routes.{name}]).")
        data["routes"][name] = {"name": name, **table}
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain_errors(source, exc, data)) from None


def load_catalog(path: Path) -> Catalog:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file. Point LLMHOST_CONFIG or --config at models.toml.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}.") from None
    return parse_catalog(text, str(path))

"""models.toml: the routing table users edit, validated once at load and frozen.

A bad file must produce one clear paragraph naming the file, the route and the key,
never a traceback: `ConfigError` carries that text and `llmhost check` prints it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmhost import engine_keys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Paths the host itself serves; a route with one of these names would shadow them.
RESERVED_ROUTE_NAMES = frozenset(
    {
        "openai",
        "v1",
        "healthz",
        "routes",
        "stats",
        "metrics",
        "tools",
        "docs",
        "redoc",
        "openapi.json",
        "admin",
        "static",
    }
)
_ROUTE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ConfigError(ValueError):
    """models.toml is unusable; the message is meant for the user as is."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HostConfig(_Frozen):
    idle_seconds: float = Field(600, gt=0, description="unload a model this long after its last request")
    start_timeout_seconds: float = Field(300, gt=0, description="longest a request waits for its model")
    policy: Literal["exclusive", "fit"] = "exclusive"
    prewarm: tuple[str, ...] = ()
    drain_timeout_seconds: float = Field(
        60, gt=0, description="longest an eviction waits for in-flight requests to finish"
    )
    max_hold_seconds: float = Field(
        30, ge=0, description="longest a resident model keeps taking new work while another waits"
    )
    max_waiting: int = Field(64, ge=1, description="requests that may wait per model; more get 503")
    max_in_flight: int = Field(
        256, ge=1, description="requests one model serves at once; more wait (vLLM batches them)"
    )
    retry_backoff_seconds: float = Field(
        10, ge=0, description="after a failed load, requests fail fast for this long"
    )
    vram_settle_seconds: float = Field(
        20, ge=0, description="longest to wait for freed GPU memory to show up after an unload"
    )
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    cors_origins: tuple[str, ...] = ()
    loading_feedback: bool = False


class ServingConfig(_Frozen):
    """Options for vLLM's OpenAI serving layer (what `vllm serve` takes on its command line)."""

    tool_parser: str | None = None
    enable_auto_tools: bool | None = None  # default: on when a tool parser is set
    reasoning_parser: str | None = None
    chat_template: str | None = None
    chat_template_content_format: Literal["auto", "string", "openai"] = "auto"
    response_role: str = "assistant"
    enable_prompt_tokens_details: bool = False
    max_log_len: int | None = None

    @property
    def auto_tools(self) -> bool:
        return self.tool_parser is not None if self.enable_auto_tools is None else self.enable_auto_tools


class PipelineConfig(_Frozen):
    """Options of a diffusion route (VISION_* variables override them)."""

    revision: str | None = None
    torch_dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    enable_tiling: bool = False
    enable_attention_slicing: bool = False
    enable_safety_checker: bool = True
    max_edge: int = Field(1024, ge=64, le=4096)
    default_steps: int = Field(28, ge=1, le=200)
    max_steps: int = Field(100, ge=1, le=500)
    default_guidance_scale: float = Field(4.5, ge=0, le=50)
    max_images: int = Field(4, ge=1, le=16)
    max_queue: int = Field(8, ge=1, le=1024)
    device: str | None = None  # default: cuda when available, else cpu


class RouteConfig(_Frozen):
    name: str
    kind: Literal["llm", "diffusion"]
    model: str = Field(min_length=1)
    served_names: tuple[str, ...] = ()
    auth: Literal["key", "none"] | None = None  # default: "key" for llm, "none" for diffusion
    idle_seconds: float | None = Field(None, gt=0)
    memory_gib: float | None = Field(None, gt=0, description="GPU memory the model needs (fit policy)")
    engine: dict[str, Any] = Field(default_factory=dict)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _ROUTE_NAME.match(name):
            raise ValueError("route names are lowercase letters, digits, '-' and '_' (it becomes a URL path)")
        if name in RESERVED_ROUTE_NAMES:
            raise ValueError(f"'{name}' is a path the host serves itself; pick another route name")
        return name

    @field_validator("served_names")
    @classmethod
    def _served(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(names)) != len(names):
            raise ValueError("served_names lists the same name twice")
        if any(not n.strip() for n in names):
            raise ValueError("served_names may not contain an empty name")
        return names

    @model_validator(mode="after")
    def _by_kind(self) -> RouteConfig:
        if self.kind == "diffusion" and self.engine:
            raise ValueError("[engine] is for llm routes; a diffusion route takes [pipeline]")
        if self.kind == "llm":
            unknown = engine_keys.unknown(self.engine)
            if unknown:
                raise ValueError(
                    f"[engine] has keys vLLM's AsyncEngineArgs does not know: {', '.join(unknown)}"
                )
            for key in ("model", "served_model_name"):
                if key in self.engine:
                    raise ValueError(f"[engine] may not set '{key}': use the route's model/served_names")
        return self

    @property
    def auth_mode(self) -> Literal["key", "none"]:
        if self.auth is not None:
            return self.auth
        return "none" if self.kind == "diffusion" else "key"

    @property
    def model_ids(self) -> tuple[str, ...]:
        """Every id a client may send for this route: its served names, then the route name."""
        names = self.served_names or (self.model,)
        return (*names, self.name) if self.name not in names else names

    @property
    def primary_id(self) -> str:
        return self.model_ids[0]

    def effective_idle_seconds(self, host: HostConfig) -> float:
        return self.idle_seconds if self.idle_seconds is not None else host.idle_seconds


class Catalog(_Frozen):
    """The validated routing table: host options plus routes by name."""

    host: HostConfig = Field(default_factory=HostConfig)
    routes: dict[str, RouteConfig]
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
                _explain(self.source, exc, data, prefix="after environment overrides, ")
            ) from None


def _explain(source: str, exc: ValidationError, raw: Mapping[str, Any], prefix: str = "") -> str:
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        where = _where(loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key '{loc[-1]}'"
        problems.append(f"{where}: {msg}" if where else msg)
    lead = f"{source}: {prefix}" if prefix else f"{source}: "
    return lead + "; ".join(problems) + "."


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
    return ".".join(loc)


def parse_catalog(text: str, source: str = "models.toml") -> Catalog:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}.") from None
    unknown_top = sorted(set(raw) - {"host", "routes"})
    if unknown_top:
        raise ConfigError(
            f"{source}: unknown top-level table(s) {', '.join(unknown_top)}; "
            "expected [host] and [routes.NAME]."
        )
    routes = raw.get("routes")
    if not isinstance(routes, dict) or not routes:
        raise ConfigError(f"{source}: no routes defined; add at least one [routes.NAME] table.")
    data: dict[str, Any] = {"host": raw.get("host", {}), "routes": {}, "source": source}
    for name, table in routes.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: routes.{name} must be a table ([routes.{name}]).")
        data["routes"][name] = {"name": name, **table}
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(source, exc, data)) from None


def load_catalog(path: Path) -> Catalog:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file. Point LLMHOST_CONFIG or --config at models.toml.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}.") from None
    return parse_catalog(text, str(path))

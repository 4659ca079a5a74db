"""models.toml: the routing table users edit, validated once at load and frozen.

A bad file must produce one clear paragraph naming the file, the route and the key,
never a traceback: `ConfigError` carries that text and `llmhost check` prints it.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from llmhost import vllm_source
from llmhost.gpu import GIB

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
# `vllm serve` flags that are [serving] keys here, under another name.
_SERVING_RENAMES = {"tool_call_parser": "tool_parser", "enable_auto_tool_choice": "enable_auto_tools"}


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
    engine_margin_gib: float = Field(
        0.75,
        ge=0,
        le=8,
        description="GPU memory left free for an engine's own CUDA context when memory_gib is auto",
    )


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

    @field_validator("tool_parser", "reasoning_parser")
    @classmethod
    def _parser(cls, name: str | None, info: ValidationInfo) -> str | None:
        # Against vLLM's registries, read from its source (nothing to check without vLLM).
        kind = "tool" if info.field_name == "tool_parser" else "reasoning"
        problem = vllm_source.parser_problem(kind, name) if name else None
        if problem:
            raise ValueError(problem)
        return name


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
    # GPU memory: "model" / "sequential" keep the weights in host RAM and move them to the
    # GPU as they run (diffusers' CPU offload); text_encoder_3 = false loads SD3 without T5.
    offload: Literal["none", "model", "sequential"] = "none"
    text_encoder_3: bool = True

    @field_validator("max_edge")
    @classmethod
    def _max_edge(cls, edge: int) -> int:
        # Image sides are multiples of 16 (backends.diffusion.DEFAULT_SIZE_MULTIPLE).
        if edge % 16:
            lower, upper = edge - edge % 16, edge - edge % 16 + 16
            raise ValueError(
                f"must be a multiple of 16 (image sides are); {edge} is not: use {lower} or {upper}"
            )
        return edge


class RouteConfig(_Frozen):
    name: str
    kind: Literal["llm", "diffusion"]
    model: str = Field(min_length=1)
    served_names: tuple[str, ...] = ()
    auth: Literal["key", "none"] | None = None  # default: "key" for llm, "none" for diffusion
    idle_seconds: float | None = Field(None, gt=0)
    # GPU memory the model may use. llm routes: "auto" (the default) or GiB, turned into
    # vLLM's gpu_memory_utilization at load time (llmhost.lifecycle.sizing). Diffusion
    # routes: what the `fit` policy reserves for the pipeline (default: measured).
    memory_gib: Annotated[float, Field(gt=0)] | Literal["auto"] | None = None
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

    @field_validator("memory_gib", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is None or value == "auto" or (number and value > 0):
            return value
        raise ValueError(f'memory_gib is a number of GiB above 0 (e.g. 6.5) or "auto", not {value!r}')

    @field_validator("served_names")
    @classmethod
    def _served(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(names)) != len(names):
            raise ValueError("served_names lists the same name twice")
        if any(not n.strip() for n in names):
            raise ValueError("served_names may not contain an empty name")
        return names

    @field_validator("engine")
    @classmethod
    def _engine(cls, engine: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Keys and values against vLLM's AsyncEngineArgs, read from its source; "32k"-style
        sizes become integers, as vLLM's command line reads them. Every problem is reported
        (see _explain); without vLLM installed only the route's own rules apply."""
        if info.data.get("kind") != "llm":
            return engine
        problems: list[tuple[str, str]] = []
        for key in ("model", "served_model_name"):
            if key in engine:
                problems.append((key, f"{key}: not set here; use the route's model / served_names"))
        for key in vllm_source.unknown(engine):
            if key in ServingConfig.model_fields or key in _SERVING_RENAMES:
                hint = f"; it belongs in [serving] as {_SERVING_RENAMES.get(key, key)}"
            else:
                close = vllm_source.suggest(key, vllm_source.known() or ())
                hint = f"; did you mean `{close}`?" if close else ""
            problems.append((key, f"{key}: unknown key (vLLM's AsyncEngineArgs has no such field){hint}"))
        values, bad = vllm_source.check_engine(engine)
        problems += bad
        if problems:
            summary = "; ".join(text for _, text in problems)
            context = {"summary": summary, "problems": problems}
            raise PydanticCustomError("engine_values", "{summary}", context)
        return values

    @model_validator(mode="after")
    def _by_kind(self) -> RouteConfig:
        if self.kind == "diffusion" and self.engine:
            raise ValueError("[engine] is for llm routes; a diffusion route takes [pipeline]")
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

    @property
    def memory_is_auto(self) -> bool:
        """Whether the host sizes this route's GPU memory itself (llm routes by default)."""
        return self.memory_gib == "auto" or (self.memory_gib is None and self.kind == "llm")

    @property
    def memory_bytes(self) -> int | None:
        """The GPU memory set in GiB for this route, in bytes (None: auto or unset)."""
        return int(self.memory_gib * GIB) if isinstance(self.memory_gib, (int, float)) else None

    def effective_idle_seconds(self, host: HostConfig) -> float:
        return self.idle_seconds if self.idle_seconds is not None else host.idle_seconds


_MODE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class SearchConfig(_Frozen):
    """[search]: the modes of /tools/searxng_search, and how mode "auto" picks one."""

    # Mode -> SearXNG engine names (as in SearXNG's settings.yml; searxng/settings.yml
    # enables exactly these).
    modes: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "general": ("duckduckgo", "brave", "wikipedia", "wikidata"),
            "code": ("github", "stackoverflow", "duckduckgo"),
            "research": ("arxiv", "semantic scholar", "duckduckgo"),
        }
    )
    # Mode "auto": the first mode here with a keyword contained in the model's name.
    auto: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "code": ("code", "coder", "deepseek-coder", "qwen-coder"),
            "research": ("research", "r1", "deepseek-r1"),
        }
    )
    default_mode: str = "general"  # "auto" when no keyword matches, or no model is given
    max_results: int = Field(5, ge=1, le=50, description="results per answer when a request sets none")
    timeout_seconds: float = Field(10, gt=0, le=120, description="longest wait for SearXNG; then 504")

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        for name, engines in self.modes.items():
            if name == "auto" or not _MODE_NAME.match(name):
                raise ValueError(f"mode name '{name}': lowercase letters, digits, '-', '_'; not 'auto'")
            if not engines or any(not e.strip() for e in engines):
                raise ValueError(f"mode '{name}' needs at least one SearXNG engine name")
        defined = ", ".join(self.modes)
        for name in self.auto:
            if name not in self.modes:
                raise ValueError(f"[search.auto] names mode '{name}', which [search.modes] lacks ({defined})")
        if self.default_mode not in self.modes:
            raise ValueError(f"default_mode '{self.default_mode}' is not in [search.modes] ({defined})")
        return self

    def mode_for(self, names: tuple[str, ...]) -> str:
        """The mode "auto" means for a model known by `names` (its id, then its route's model)."""
        for name in names:
            lowered = name.lower()
            for mode, keywords in self.auto.items():
                if any(keyword.lower() in lowered for keyword in keywords):
                    return mode
        return self.default_mode


class Catalog(_Frozen):
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
                _explain(self.source, exc, data, prefix="after environment overrides, ")
            ) from None


def _explain(source: str, exc: ValidationError, raw: Mapping[str, Any], prefix: str = "") -> str:
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
            msg = msg.format(value=_toml_value(err.get("input")))
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


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


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
        raise ConfigError(_explain(source, exc, data)) from None


def load_catalog(path: Path) -> Catalog:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file. Point LLMHOST_CONFIG or --config at models.toml.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}.") from None
    return parse_catalog(text, str(path))

"""A [routes.NAME] table, with its [serving] and [pipeline] sub-tables."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from llmhost import vllm_source
from llmhost.config.base import Frozen
from llmhost.config.host import HostConfig
from llmhost.units import GIB

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
# Route kinds served by a vLLM engine: "llm" generates (chat, completions); "embedding" and
# "rerank" run vLLM's pooling runner (`runner="pooling"`) for /v1/embeddings and /v1/rerank.
POOLING_KINDS = frozenset({"embedding", "rerank"})
VLLM_KINDS = frozenset({"llm"}) | POOLING_KINDS
# `vllm serve` flags that are [serving] keys here, under another name.
_SERVING_RENAMES = {"tool_call_parser": "tool_parser", "enable_auto_tool_choice": "enable_auto_tools"}


class ServingConfig(Frozen):
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


class PipelineConfig(Frozen):
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
        # Image sides are multiples of 16 (llmhost.config.image_size.DEFAULT_SIZE_MULTIPLE).
        if edge % 16:
            lower, upper = edge - edge % 16, edge - edge % 16 + 16
            raise ValueError(
                f"must be a multiple of 16 (image sides are); {edge} is not: use {lower} or {upper}"
            )
        return edge


class RouteConfig(Frozen):
    name: str
    kind: Literal["llm", "diffusion", "embedding", "rerank"]
    model: str = Field(min_length=1)
    served_names: tuple[str, ...] = ()
    auth: Literal["key", "none"] | None = None  # default: "key" for llm, "none" for diffusion
    idle_seconds: float | None = Field(None, gt=0)
    # GPU memory the model may use. llm routes: "auto" (the default) or GiB, turned into
    # vLLM's gpu_memory_utilization at load time (llmhost.lifecycle.sizing). Diffusion
    # routes: what the `fit` policy reserves for the pipeline (default: measured).
    memory_gib: Annotated[float, Field(gt=0)] | Literal["auto"] | None = None
    # Warm standby (docs/standby.md): "sleep" puts the engine to sleep with vLLM's sleep
    # mode when another model needs the GPU, instead of shutting it down. Off until a GPU
    # host has proven it for the model (`scripts/gpu_check.py --standby`).
    standby: Literal["off", "sleep"] = "off"
    sleep_level: Literal[1, 2] = 1  # 1: weights kept in host RAM; 2: reloaded from disk on wake
    # A small model that stays (docs/lifecycle.md, "Resident routes"): loaded at start-up,
    # never evicted to make room for another route, its GPU memory counted as used when the
    # others size themselves; unloaded by `llmhost unload`, a reload that changes it, or
    # idle time only when this route sets idle_seconds itself.
    resident: bool = False
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
        (see llmhost.config.explain); without vLLM installed only the route's own rules apply."""
        if info.data.get("kind") not in VLLM_KINDS:
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
        if self.kind == "diffusion" and self.standby != "off":
            raise ValueError('standby = "sleep" is for llm routes (vLLM\'s sleep mode); pipelines unload')
        if self.kind in POOLING_KINDS:
            self._pooling_rules()
        if self.resident and self.standby != "off":
            # Only an eviction to make room puts an engine to sleep (idle time, reloads and
            # stops shut it down), and a resident engine is never evicted to make room.
            raise ValueError(
                'resident = true with standby = "sleep": a resident route is never evicted to make '
                "room, and that is the only time an engine sleeps; leave standby out"
            )
        if "enable_sleep_mode" in self.engine:
            raise ValueError(
                'enable_sleep_mode: not set here; standby = "sleep" turns it on where the GPU supports it'
            )
        return self

    def _pooling_rules(self) -> None:
        # The kind picks vLLM's runner; standby's probe generates text, which a pooling
        # engine cannot; [serving] configures chat templating and parsers, which it has none of.
        runner = self.engine.get("runner", "pooling")
        if runner not in ("pooling", "auto"):
            raise ValueError(
                f'runner: kind = "{self.kind}" runs vLLM\'s pooling runner; '
                f'leave runner out (it is "pooling"), or use kind = "llm" to generate'
            )
        if self.standby != "off":
            raise ValueError(f'standby = "sleep" is for llm routes; a {self.kind} route unloads')
        parsers = [k for k in ("tool_parser", "reasoning_parser") if getattr(self.serving, k)]
        if parsers:
            raise ValueError(
                f"[serving] {', '.join(parsers)}: for llm routes; a {self.kind} route generates no text"
            )

    @property
    def runs_vllm(self) -> bool:
        """Whether a vLLM engine serves this route (llm, embedding and rerank routes)."""
        return self.kind in VLLM_KINDS

    @property
    def draws_images(self) -> bool:
        """Whether this route draws images (a diffusers pipeline), served by /v1/images."""
        return self.kind == "diffusion"

    @property
    def pooling(self) -> bool:
        """Whether the route runs vLLM's pooling runner (embedding and rerank routes)."""
        return self.kind in POOLING_KINDS

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
        """Whether the host sizes this route's GPU memory itself (vLLM routes by default)."""
        return self.memory_gib == "auto" or (self.memory_gib is None and self.runs_vllm)

    @property
    def memory_bytes(self) -> int | None:
        """The GPU memory set in GiB for this route, in bytes (None: auto or unset)."""
        return int(self.memory_gib * GIB) if isinstance(self.memory_gib, (int, float)) else None

    def effective_idle_seconds(self, host: HostConfig) -> float:
        return self.idle_seconds if self.idle_seconds is not None else host.idle_seconds

    def idle_unload_seconds(self, host: HostConfig) -> float | None:
        """Seconds unused before the model unloads; None: never (a resident route that
        does not set idle_seconds itself ignores [host] idle_seconds)."""
        if self.resident and self.idle_seconds is None:
            return None
        return self.effective_idle_seconds(host)

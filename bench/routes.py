"""Which models the benchmark runs, and how each side is configured for them.

Two language-model routes, A and B (A is the one served and cold-started; B is what a
swap brings in), and one diffusion route. By default they are the tiny local models of
`llmhost.tiny_models` with `tiny_engine_args()` (CPU or GPU, no download). With
`--config models.toml` they are routes of that file, with its engine, serving and
pipeline tables (for an NVIDIA host with the real models).

Both sides get the same engine arguments: llmhost from the `[routes.X.engine]` table
of the configuration written for the run, vLLM's OpenAI server from the same table
turned into its command-line flags, the bare engine from the same dictionary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from bench.common import PYTHON
from llmhost.config.text import models_toml

# vLLM server flags for llmhost's [serving] options (what `vllm serve` calls them).
_SERVING_FLAGS = {
    "tool_parser": "--tool-call-parser",
    "reasoning_parser": "--reasoning-parser",
    "chat_template": "--chat-template",
    "chat_template_content_format": "--chat-template-content-format",
    "response_role": "--response-role",
}


@dataclass(frozen=True)
class Route:
    """One route as the benchmark uses it: its TOML table and the facts derived from it."""

    name: str
    table: dict[str, Any]  # the [routes.NAME] table, sub-tables included

    @property
    def kind(self) -> str:
        return str(self.table["kind"])

    @property
    def model(self) -> str:
        return str(self.table["model"])

    @property
    def served_names(self) -> list[str]:
        return [str(n) for n in self.table.get("served_names", [])]

    @property
    def model_id(self) -> str:
        """What clients send as `model`: the first served name (or the model)."""
        names = self.served_names
        return names[0] if names else self.model

    @property
    def engine(self) -> dict[str, Any]:
        return dict(self.table.get("engine", {}))

    @property
    def serving(self) -> dict[str, Any]:
        return dict(self.table.get("serving", {}))

    @property
    def pipeline(self) -> dict[str, Any]:
        return dict(self.table.get("pipeline", {}))


@dataclass(frozen=True)
class Subjects:
    """What a run measures: routes A and B (llm) and V (diffusion), and where they came from."""

    source: str  # "tiny" or the path of models.toml
    llm_a: Route
    llm_b: Route
    vision: Route
    host: dict[str, Any] = field(default_factory=dict)
    offline: bool = True  # HF_HUB_OFFLINE for every child (tiny models are local)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "llm_a": {"route": self.llm_a.name, "model": self.llm_a.model, "engine": self.llm_a.engine},
            "llm_b": {"route": self.llm_b.name, "model": self.llm_b.model, "engine": self.llm_b.engine},
            "vision": {
                "route": self.vision.name,
                "model": self.vision.model,
                "pipeline": self.vision.pipeline,
            },
        }


def tiny_subjects() -> Subjects:
    from llmhost.tiny_models import ensure_tiny_models, tiny_engine_args

    models = ensure_tiny_models()
    engine = tiny_engine_args()
    return Subjects(
        source="tiny",
        llm_a=Route(
            "a", {"kind": "llm", "model": str(models.llm), "served_names": ["tiny-a"], "engine": engine}
        ),
        llm_b=Route(
            "b", {"kind": "llm", "model": str(models.llm_alt), "served_names": ["tiny-b"], "engine": engine}
        ),
        vision=Route(
            "vision",
            {
                "kind": "diffusion",
                "model": str(models.sd3),
                "served_names": ["tiny-vision"],
                "pipeline": {"max_edge": 512, "default_steps": 4},
            },
        ),
    )


def config_subjects(path: Path, names: Sequence[str] | None = None) -> Subjects:
    """Routes of a models.toml: `names` (A, B, vision) or the first two llm and first diffusion."""
    from llmhost.config import load_catalog

    catalog = load_catalog(path)  # validates; ConfigError names what is wrong
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    tables: dict[str, Any] = raw["routes"]
    if names:
        if len(names) != 3:
            raise SystemExit("--routes takes three route names: A,B,VISION (two llm, one diffusion)")
        chosen = list(names)
    else:
        llms = [r.name for r in catalog.routes.values() if r.kind == "llm"]
        images = [r.name for r in catalog.routes.values() if r.kind == "diffusion"]
        if len(llms) < 2 or not images:
            raise SystemExit(f"{path}: the benchmark needs two llm routes and one diffusion route")
        chosen = [llms[0], llms[1], images[0]]
    for name, kind in zip(chosen, ("llm", "llm", "diffusion"), strict=True):
        if name not in catalog.routes or catalog.routes[name].kind != kind:
            raise SystemExit(f"{path}: route '{name}' must exist and be of kind {kind!r}")
    a, b, v = (Route(n, tables[n]) for n in chosen)
    return Subjects(str(path), a, b, v, host=dict(raw.get("host", {})), offline=False)


# ---- llmhost's side ----------------------------------------------------------------------


def write_llmhost_config(path: Path, subjects: Subjects, routes: Sequence[Route]) -> Path:
    """A models.toml for one llmhost run: `routes`, policy exclusive, nothing prewarmed."""
    host = {
        **{k: v for k, v in subjects.host.items() if k not in ("prewarm", "policy", "idle_seconds")},
        "policy": "exclusive",
        "idle_seconds": 3600,
        "start_timeout_seconds": max(600, int(subjects.host.get("start_timeout_seconds", 0))),
    }
    tables: dict[str, dict[str, Any]] = {}
    for route in routes:
        table = {k: v for k, v in route.table.items() if k not in ("idle_seconds", "auth")}
        table["auth"] = "none"  # neither side checks a key
        tables[route.name] = table
    text = models_toml(host, tables, comment="Written by bench.run for one measurement.")
    path.write_text(text, encoding="utf-8")
    return path


def llmhost_argv(config: Path, port: int) -> list[str]:
    return [PYTHON, "-m", "llmhost", "serve", "--config", str(config), "--port", str(port)]


# ---- vLLM's own server ----------------------------------------------------------------


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def engine_flags(engine: Mapping[str, Any]) -> list[str]:
    """AsyncEngineArgs keywords as `vllm serve` flags (booleans as --x / --no-x)."""
    argv: list[str] = []
    for key, value in engine.items():
        if isinstance(value, bool):
            argv.append(_flag(key) if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            argv += [_flag(key), *(str(v) for v in value)]
        elif isinstance(value, Mapping):
            argv += [_flag(key), json.dumps(value)]
        else:
            argv += [_flag(key), str(value)]
    return argv


def serving_flags(serving: Mapping[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, flag in _SERVING_FLAGS.items():
        if serving.get(key) is not None:
            argv += [flag, str(serving[key])]
    auto = serving.get("enable_auto_tools")
    if auto or (auto is None and serving.get("tool_parser")):
        argv.append("--enable-auto-tool-choice")
    if serving.get("enable_prompt_tokens_details"):
        argv.append("--enable-prompt-tokens-details")
    return argv


def vllm_server_argv(route: Route, port: int) -> list[str]:
    """`python -m vllm.entrypoints.openai.api_server` for `route`, as `vllm serve` would run it."""
    return [
        PYTHON,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        route.model,
        "--served-model-name",
        *(route.served_names or [route.model]),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *engine_flags(route.engine),
        *serving_flags(route.serving),
    ]

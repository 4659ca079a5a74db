"""`llmhost demo`: the built-in default. Tiny local models behind the shipped route names.

It builds the tiny models once (llmhost.tiny_models), writes a models.toml with the six
routes and served names of the shipped one, backed by those models, and serves it.
Replies are random text, but every path is real: vLLM engines, swaps, tool and
reasoning parsers, a diffusers pipeline. Runs on CPU or GPU, with no download.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from llmhost.config.text import models_toml
from llmhost.tiny_models import TinyModels, ensure_tiny_models, tiny_engine_args

# route -> (which tiny model, served names as in models.toml, [serving] options)
DEMO_ROUTES: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "coder": ("llm", ("coder-fast", "qwen2.5-coder-7b-instruct"), {"tool_parser": "hermes"}),
    "chat": ("llm_alt", ("chat-general",), {}),
    "general": ("llm_alt", ("general-reasoner",), {"reasoning_parser": "deepseek_r1"}),
    "coderslow": ("llm", ("coder-slow",), {}),
    "agent": ("llm", ("agent-tools",), {"tool_parser": "hermes"}),
}
VISION_NAMES = ("vision-diffusion", "sd3.5-medium")


def demo_config_text(models: TinyModels) -> str:
    host = {"policy": "exclusive", "idle_seconds": 600, "start_timeout_seconds": 300}
    routes: dict[str, dict[str, Any]] = {}
    for route, (which, names, serving) in DEMO_ROUTES.items():
        routes[route] = {
            "kind": "llm",
            "model": str(getattr(models, which)),
            "served_names": list(names),
            "engine": tiny_engine_args(),
        }
        if serving:
            routes[route]["serving"] = dict(serving)
    routes["vision"] = {
        "kind": "diffusion",
        "model": str(models.sd3),
        "served_names": list(VISION_NAMES),
        "auth": "none",
        "pipeline": {"max_edge": 512, "default_steps": 4},
    }
    comment = "Written by `llmhost demo`: the shipped routes, backed by tiny local models."
    return models_toml(host, routes, comment=comment)


def write_demo_config(cache_dir: Path | None = None) -> Path:
    models = ensure_tiny_models(cache_dir)
    path = models.llm.parent / "demo-models.toml"
    path.write_text(demo_config_text(models), encoding="utf-8")
    return path


def next_steps(port: int, key: bool, config: Path | None = None) -> str:
    auth = ' -H "Authorization: Bearer $VLLM_API_KEY"' if key else ""
    base = f"http://127.0.0.1:{port}"
    where = (
        f"Its configuration: {config}\n"
        "(written anew at each start; copy it to start your own: "
        f"cp {shlex.quote(str(config))} models.toml)\n"
        if config is not None
        else ""
    )
    return f"""
llmhost demo: tiny random-weight models (replies are gibberish; every path is real).
{where}Try, in another terminal:
  curl -s {base}/openai/v1/models{auth}
  curl -s {base}/openai/v1/chat/completions{auth} -H 'Content-Type: application/json' \\
       -d '{{"model": "coder-fast", "messages": [{{"role": "user", "content": "hello"}}], "max_tokens": 16}}'
  curl -s {base}/vision/generate -H 'Content-Type: application/json' \\
       -d '{{"prompt": "a red fox", "width": 64, "height": 64}}' | jq -r .image_base64 | base64 -d > fox.png
  curl -s {base}/stats{auth}
"""

"""The catalogs the app-level tests share, written by `llmhost.config.text` (the one
models.toml writer) and parsed as the host parses models.toml.

A route here is a dict of its `[routes.NAME]` table; `text()` writes a whole models.toml
from a `[host]` table and routes, `catalog()` parses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmhost.config import Catalog, parse_catalog
from llmhost.config.text import models_toml

Routes = Mapping[str, Mapping[str, Any]]


def llm(served: str, model: str, **table: Any) -> dict[str, Any]:
    """A `kind = "llm"` route table serving `served` from `model`."""
    return {"kind": "llm", "model": model, "served_names": [served], **table}


def diffusion(served: str, model: str, **table: Any) -> dict[str, Any]:
    """A `kind = "diffusion"` route table serving `served` from `model`."""
    return {"kind": "diffusion", "model": model, "served_names": [served], **table}


def pooling(kind: str, served: str, model: str, **table: Any) -> dict[str, Any]:
    """A `kind = "embedding"` or `kind = "rerank"` route table serving `served` from `model`."""
    return {"kind": kind, "model": model, "served_names": [served], **table}


def text(routes: Routes, **host: Any) -> str:
    """models.toml text: `[host]` with `host`'s keys, then one `[routes.NAME]` per route."""
    return models_toml(host, routes)


def catalog(routes: Routes, **host: Any) -> Catalog:
    return parse_catalog(text(routes, **host))


CODER = llm("coder-fast", "org/coder")
CHAT = llm("chat-general", "org/chat")
VISION = diffusion("vision-diffusion", "org/sd")
EMBED = pooling("embedding", "embedder", "org/embedder")
RERANK = pooling("rerank", "reranker", "org/reranker")

#: An LLM and an image route: the admin endpoints, the error envelope, model resolution.
CODER_AND_VISION: dict[str, dict[str, Any]] = {"coder": CODER, "vision": VISION}

#: Two LLMs: `llmhost status` (with the coder prewarmed).
CODER_AND_CHAT: dict[str, dict[str, Any]] = {"coder": CODER, "chat": CHAT}

#: Two LLMs, an image route with small pipeline bounds, an embedder and a reranker: the
#: fuzz and bad-input suites.
SERVING: dict[str, dict[str, Any]] = {
    "coder": CODER,
    "chat": CHAT,
    "vision": VISION | {"pipeline": {"max_edge": 256, "max_steps": 8, "max_images": 2}},
    "embed": EMBED,
    "rerank": RERANK,
}

#: Keyed and open routes of both kinds: the security suite. The chat route names a real
#: hub id, which only its served names may select.
SECURITY: dict[str, dict[str, Any]] = {
    "coder": CODER,
    "chat": llm("chat-general", "Qwen/Qwen2.5-0.5B-Instruct"),
    "public": llm("public-model", "org/public", auth="none"),
    "vision": VISION | {"auth": "key"},
    "sketch": diffusion("sketch-diffusion", "org/sketch"),
    "embed": EMBED,
    "rerank": RERANK,
}

#: The shipped LLM routes' models: the search tool picks its mode from them.
SHIPPED_LLMS: dict[str, dict[str, Any]] = {
    "coder": llm("coder-fast", "Qwen/Qwen2.5-Coder-7B-Instruct"),
    "general": llm("general-reasoner", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"),
    "chat": llm("chat-general", "meta-llama/Meta-Llama-3.1-8B-Instruct"),
}

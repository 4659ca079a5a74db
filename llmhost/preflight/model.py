"""Cheap checks that a route's model can be found, run before anything is evicted for it.

A route whose weights cannot be found must fail fast with a message naming the route
and what to do, not after the resident model was unloaded to make room for it, and not
with a loader's misleading error ("Repo id must be in the form 'repo_name'..." for a
local path that does not exist). Used by `llmhost check`, by reloads, and by the
manager just before it decides a load.

File-system stats only, plus a lookup in the local Hugging Face cache when the hub is
switched off (HF_HUB_OFFLINE): milliseconds.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from llmhost.config import Catalog, ConfigError, RouteConfig

# owner/name (or a bare name) as the Hugging Face Hub allows them.
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")
_PATH_PREFIXES = ("/", "./", "../", "~", ".\\")


def looks_like_path(model: str) -> bool:
    return model.startswith(_PATH_PREFIXES) or model in (".", "..")


def problem(route: RouteConfig, *, offline_cache: bool = True) -> str | None:
    """Why the route's model cannot be loaded as configured, or None if it may be.

    `offline_cache=False` skips the cache lookup: `check` and reloads refuse only what is
    wrong in the file itself; a model not fetched yet is for `llmhost pull`.
    """
    model = route.model
    if looks_like_path(model) or Path(model).expanduser().is_dir():
        path = Path(model).expanduser()
        if not path.exists():
            return f"the model path {model} does not exist (route '{route.name}')"
        if not path.is_dir():
            return f"the model path {model} is not a directory (route '{route.name}')"
        return None
    if not _REPO_ID.match(model) or "--" in model or ".." in model:
        return (
            f"'{model}' is neither an existing directory nor a Hugging Face repo id "
            f"such as org/name (route '{route.name}')"
        )
    if offline_cache and _offline() and not _cached(route):
        return (
            f"{model} is not in the local cache and HF_HUB_OFFLINE is set "
            f"(route '{route.name}'): run `llmhost pull {route.name}` with the hub reachable"
        )
    return None


def config_problems(catalog: Catalog) -> list[str]:
    """What `check` and a reload refuse: local paths that do not exist, malformed ids, and
    embedding or rerank routes whose model vLLM cannot pool (llmhost.preflight.pooling)."""
    from llmhost.preflight import pooling

    found = (problem(r, offline_cache=False) or pooling.problem(r) for r in catalog.routes.values())
    return [p for p in found if p is not None]


def refuse_missing(catalog: Catalog) -> None:
    """Raise ConfigError, in the usual one paragraph, when a route's model cannot be found."""
    found = config_problems(catalog)
    if found:
        raise ConfigError(f"{catalog.source}: {'; '.join(found)}.")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _cached(route: RouteConfig) -> bool:
    """Whether the model's entry file is in the Hugging Face cache (its weights may still
    be partial: a real load says so; this only catches the model that was never fetched)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # no hub library: nothing to look in, let the loader decide
        return True
    if route.kind == "diffusion":
        filename, revision = "model_index.json", route.pipeline.revision
    else:
        filename, revision = "config.json", route.engine.get("revision")
    found = try_to_load_from_cache(route.model, filename, revision=revision)
    return isinstance(found, str)

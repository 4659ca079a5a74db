"""A route's download plan from the Hub's metadata, and the download itself.

The plan reads the repository's listing with sizes (`model_info(files_metadata=True)`)
and the JSON files the selection depends on (model_index.json for a pipeline, the
safetensors index for an LLM, modules.json for a sentence-transformers model) into a
temporary folder, never into the cache: a dry run leaves the cache as it was.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmhost.config import RouteConfig
from llmhost.pull.errors import PullError
from llmhost.pull.selection import SAFETENSORS_INDEX, WEIGHT_EXTENSIONS, diffusion_files, llm_files


@dataclass(frozen=True)
class RepoFile:
    name: str
    size: int | None  # bytes; None when the Hub gave no size


@dataclass(frozen=True)
class Plan:
    """What `llmhost pull` fetches for one route, at one commit."""

    route: str
    repo: str
    revision: str | None  # as models.toml pins it (None: the default branch)
    commit: str
    files: tuple[RepoFile, ...]
    left_out: tuple[RepoFile, ...]  # the rest of the repository, not loaded

    @property
    def total_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)

    @property
    def left_out_bytes(self) -> int:
        return sum(f.size or 0 for f in self.left_out)


def revision_of(route: RouteConfig) -> str | None:
    """The route's pinned revision (models.toml: [pipeline] or [engine] revision)."""
    value = route.pipeline.revision if route.kind == "diffusion" else route.engine.get("revision")
    return str(value) if value else None


def plan_route(route: RouteConfig, token: str | None, revision: str | None = None) -> Plan:
    """The files the route's loader reads, with sizes, from the Hub's metadata.

    `revision` overrides the route's own (a commit already resolved from it).
    """
    from huggingface_hub import HfApi

    wanted = revision or revision_of(route)
    info = HfApi().model_info(route.model, revision=wanted, files_metadata=True, token=token)
    commit = str(info.sha or wanted or "main")
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    names = list(sizes)
    if route.kind == "diffusion":
        if "model_index.json" not in sizes:
            raise PullError(
                f"{route.name}: {route.model} has no model_index.json: it is not a diffusers "
                "pipeline, which a diffusion route loads"
            )
        index = _read_json(route.model, "model_index.json", commit, token)
        chosen = diffusion_files(names, index, route.pipeline)
    else:
        weight_map = None
        if SAFETENSORS_INDEX in sizes:
            mapping = _read_json(route.model, SAFETENSORS_INDEX, commit, token).get("weight_map")
            weight_map = set(mapping.values()) if isinstance(mapping, dict) else None
        # vLLM reads modules.json for every model (is it a sentence-transformers embedder?).
        modules = _load_json(route.model, "modules.json", commit, token) if "modules.json" in sizes else None
        load_format = str(route.engine.get("load_format", "auto"))
        chosen = llm_files(names, load_format, weight_map, modules)
        if load_format != "dummy" and not any(n.endswith(WEIGHT_EXTENSIONS) for n in chosen):
            raise PullError(
                f"{route.name}: {route.model} has no weights vLLM reads at its top level "
                "(safetensors, .bin or .pt)"
            )
    picked = set(chosen)
    return Plan(
        route=route.name,
        repo=route.model,
        revision=revision_of(route),
        commit=commit,
        files=tuple(RepoFile(n, sizes[n]) for n in chosen),
        left_out=tuple(RepoFile(n, sizes[n]) for n in names if n not in picked),
    )


def _load_json(repo: str, name: str, commit: str, token: str | None) -> Any:
    """One small JSON file of the repository, read through a temporary folder."""
    from huggingface_hub import hf_hub_download

    with tempfile.TemporaryDirectory(prefix="llmhost-pull-") as folder:
        path = hf_hub_download(repo, name, revision=commit, token=token, local_dir=folder)
        return json.loads(Path(path).read_text(encoding="utf-8"))


def _read_json(repo: str, name: str, commit: str, token: str | None) -> dict[str, Any]:
    value = _load_json(repo, name, commit, token)
    if not isinstance(value, dict):
        raise ValueError(f"{name} of {repo} is not a JSON object")
    return value


def resolve_commit(route: RouteConfig, token: str | None, cache_dir: Path) -> str:
    """The commit the route's revision names now, recorded in the cache (refs/<revision>)
    the way the loaders look it up when they run offline."""
    from huggingface_hub import HfApi

    resolved = HfApi().resolve_revision(
        route.model, revision=revision_of(route), cache_dir=cache_dir, token=token
    )
    return str(resolved.resolved)


def cached(plan: Plan, cache_dir: Path) -> list[str]:
    """The plan's files already in the cache at its commit."""
    from huggingface_hub import try_to_load_from_cache

    return [
        f.name
        for f in plan.files
        if isinstance(
            try_to_load_from_cache(plan.repo, f.name, cache_dir=cache_dir, revision=plan.commit), str
        )
    ]


def download(plan: Plan, token: str | None, cache_dir: Path, names: Iterable[str] | None = None) -> Path:
    """Fetch the plan's files (or `names` of them) into the cache; the snapshot folder."""
    from huggingface_hub import hf_hub_download

    folder: Path | None = None
    for name in names if names is not None else (f.name for f in plan.files):
        # The commit, not the branch: every file from the one the plan listed. The
        # branch's ref was recorded by `resolve_commit`.
        path = hf_hub_download(plan.repo, name, revision=plan.commit, token=token, cache_dir=cache_dir)
        folder = Path(path).parents[len(Path(name).parts) - 1]
    return folder if folder is not None else cache_dir

"""Where a route's files are: a local directory, the Hugging Face cache or, online, the Hub."""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any, Protocol

from llmhost.config import RouteConfig
from llmhost.units import MIB

# ---- where the files are ------------------------------------------------------------------


class Files(Protocol):
    where: str

    def json(self, name: str) -> dict[str, Any] | None: ...

    def sizes(self) -> dict[str, int]: ...

    def dtype_scale(self, name: str, target_bytes: int) -> float: ...


class Directory:
    """A model directory: a local path or a snapshot in the Hugging Face cache."""

    def __init__(self, root: Path, where: str) -> None:
        self.root = root
        self.where = where

    def json(self, name: str) -> dict[str, Any] | None:
        try:
            value = json.loads((self.root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def sizes(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for path in self.root.rglob("*.safetensors"):
            try:
                found[path.relative_to(self.root).as_posix()] = path.stat().st_size
            except OSError:  # a cache symlink whose blob is not downloaded (yet)
                continue
        return found

    def dtype_scale(self, name: str, target_bytes: int) -> float:
        """Bytes at `target_bytes` per float element over bytes stored, from the file's
        safetensors header (8-byte length, then JSON; no tensor data is read)."""
        try:
            with (self.root / name).open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                if length > 100 * MIB:
                    return 1.0
                header = json.loads(handle.read(length))
        except (OSError, ValueError, struct.error):
            return 1.0
        stored = scaled = 0
        for key, info in header.items():
            if key == "__metadata__" or not isinstance(info, dict):
                continue
            size = _ST_DTYPE_BYTES.get(str(info.get("dtype")))
            if size is None:
                continue
            numel = math.prod(int(d) for d in info.get("shape", []))
            stored += numel * size
            floating = info.get("dtype") in ("F32", "F16", "BF16", "F64")
            scaled += numel * (target_bytes if floating else size)
        return scaled / stored if stored else 1.0


_ST_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1}
_ST_DTYPE_BYTES |= {"BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


class _Hub:
    """The Hub's metadata for one revision (sizes of every file; small JSON files fetched)."""

    def __init__(self, repo: str, revision: str | None, cache_dir: Path | None) -> None:
        from huggingface_hub import HfApi

        self.repo = repo
        self.revision = revision
        self.cache_dir = cache_dir
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
        self._sizes = {s.rfilename: int(s.size) for s in info.siblings or [] if s.size is not None}
        self.revision = info.sha or revision
        self.where = f"the Hugging Face Hub ({repo})"

    def json(self, name: str) -> dict[str, Any] | None:
        if name not in self._sizes:
            return None
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(self.repo, name, revision=self.revision, cache_dir=self.cache_dir)
        value = json.loads(Path(path).read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else None

    def sizes(self) -> dict[str, int]:
        return {name: size for name, size in self._sizes.items() if name.endswith(".safetensors")}

    def dtype_scale(self, name: str, target_bytes: int) -> float:
        return 1.0  # headers are not fetched: sizes as stored


def _revision(route: RouteConfig) -> str | None:
    if route.kind == "diffusion":
        return route.pipeline.revision
    value = route.engine.get("revision")
    return str(value) if value else None


def _cached_snapshot(repo: str, revision: str | None, cache_dir: Path | None, probe: str) -> Path | None:
    """The cache's snapshot directory of `repo` at `revision` (a branch, tag or commit)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, probe, cache_dir=cache_dir, revision=revision)
    return Path(found).parent if isinstance(found, str) else None


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in (
        "1",
        "true",
        "yes",
    )


def locate(
    route: RouteConfig, cache_dir: Path | None, online: bool, probe: str
) -> tuple[Files | None, str | None]:
    """Where the route's files are, or why they cannot be read."""
    local = Path(route.model).expanduser()
    if local.is_dir():
        return Directory(local, str(local)), None
    if route.model.startswith(("/", "./", "../", "~")) or local.exists():
        return None, f"{route.model} is not a model directory"
    revision = _revision(route)
    try:
        snapshot = _cached_snapshot(route.model, revision, cache_dir, probe)
    except ValueError as exc:  # huggingface_hub's HFValidationError: not a repo id
        return None, f"{route.model} is neither a directory nor a Hugging Face repo id ({exc})"
    if snapshot is not None:
        return Directory(snapshot, f"the cache ({snapshot})"), None
    pull = f"llmhost pull {route.name}"
    if not online:
        return None, f"not in the cache: {pull} (or check --online)"
    if _offline():
        return None, f"not in the cache and HF_HUB_OFFLINE is set: {pull}"
    try:
        return _Hub(route.model, revision, cache_dir), None
    except Exception as exc:  # any Hub failure becomes the route's reason
        from llmhost.pull import explain

        return None, explain(route.model, exc, os.environ.get("HF_TOKEN"))

"""Cached, atomic builds of tiny models: a marker holding the recipe, a lock, a rename.

Each model directory gets a ``.complete`` marker, written last and holding the build
recipe, so a second call returns at once, an interrupted build is redone, and a change
to the recipe rebuilds. A build goes into a temporary sibling directory that is renamed
into place, under an ``fcntl`` lock, so concurrent processes (pytest-xdist workers, two
``llmhost demo`` runs) build each model once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Bump when a builder changes in a way that should invalidate cached builds (a change
#: of the chat template does so by itself: its hash is part of the LLM recipe).
RECIPE_VERSION = 2

#: Name of the file written last into a finished model directory.
MARKER_NAME = ".complete"

#: Every top-level name the builders write: a directory holding only these (and no
#: marker) is an unfinished build, e.g. from an older, non-atomic version of this code.
_BUILD_OUTPUT_NAMES = frozenset(
    {
        MARKER_NAME,
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "special_tokens_map.json",
        "modules.json",  # the tiny embedder's sentence-transformers files
        "sentence_bert_config.json",
        "1_Pooling",
        "2_Normalize",
        "model_index.json",
        "scheduler",
        "text_encoder",
        "text_encoder_2",
        "text_encoder_3",
        "tokenizer",
        "tokenizer_2",
        "tokenizer_3",
        "transformer",
        "vae",
    }
)


def default_cache_dir() -> Path:
    """Where tiny models are cached by default.

    ``$LLMHOST_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/llmhost``, else
    ``~/.cache/llmhost``; then ``tiny-models`` under it.
    """
    root = os.environ.get("LLMHOST_CACHE_DIR")
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "llmhost"
    return base / "tiny-models"


def _read_marker(dest: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((dest / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_built(dest: Path, recipe: dict[str, Any]) -> bool:
    marker = _read_marker(dest)
    return marker is not None and marker.get("recipe") == recipe


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on a sibling lock file of ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock_path = dest.parent / f".{dest.name}.lock"
    with open(lock_path, "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _check_replaceable(dest: Path) -> None:
    """Refuse to build over something at ``dest`` that these builders did not make.

    Replaceable: nothing there, an empty directory, a finished build of another recipe
    (it has the marker), or an unfinished one (only names the builders write). Anything
    else is someone's data and is left alone.
    """
    if not dest.exists() and not dest.is_symlink():
        return
    if dest.is_dir() and not dest.is_symlink():
        names = {p.name for p in dest.iterdir()}
        if MARKER_NAME in names or names <= _BUILD_OUTPUT_NAMES:
            return
    raise FileExistsError(f"{dest} exists and is not a tiny-model build; refusing to replace it")


def build_cached(dest: Path, recipe: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp_dir)`` unless ``dest`` already holds this recipe's build.

    The build writes into a temporary sibling directory; the marker is written last
    and the directory renamed into place, all under a lock, so readers never see a
    half-written model and concurrent callers build once. A build of another recipe
    (older version, other seed) at ``dest`` is replaced.
    """
    dest = Path(dest).expanduser().absolute()
    if _is_built(dest, recipe):
        return dest
    with _locked(dest):
        if _is_built(dest, recipe):  # another process finished it while we waited
            return dest
        _check_replaceable(dest)
        # Leftovers of a build that was killed mid-way (we hold the lock: none is live).
        for leftover in dest.parent.glob(f".{dest.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        try:
            tmp.chmod(0o755)  # mkdtemp makes it 0700; the result should read like any model
            with _quiet_saving():
                build(tmp)
            marker = {"recipe": recipe, "built_at": time.time()}
            (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=2), encoding="utf-8")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


@contextlib.contextmanager
def _quiet_saving() -> Iterator[None]:
    """Hide transformers' per-shard progress bars while saving many tiny files."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch for weight init without disturbing the caller's RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield

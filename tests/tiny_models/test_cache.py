"""The build cache (llmhost.tiny_models.cache): where it lives, a build redone only when
unfinished or of another recipe, never over a foreign folder, and once under concurrency."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from llmhost.tiny_models import MARKER_NAME, build_tiny_llm, default_cache_dir


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------ paths


def test_default_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMHOST_CACHE_DIR", str(tmp_path / "own"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "own" / "tiny-models"
    monkeypatch.delenv("LLMHOST_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "llmhost" / "tiny-models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "llmhost" / "tiny-models"


# ---------------------------------------------------------------------- caching


def test_unfinished_build_is_redone_and_foreign_dir_refused(tmp_path: Path) -> None:
    dest = build_tiny_llm(tmp_path / "llm", seed=3)
    weights = _sha256(dest / "model.safetensors")
    # Simulate a build that died before its marker was written.
    (dest / MARKER_NAME).unlink()
    (dest / "tokenizer.json").unlink()
    build_tiny_llm(dest, seed=3)
    assert (dest / MARKER_NAME).is_file()
    assert (dest / "tokenizer.json").is_file()
    assert _sha256(dest / "model.safetensors") == weights, "same recipe, same weights"

    # Another recipe at the same place replaces the build.
    build_tiny_llm(dest, seed=4)
    assert json.loads((dest / MARKER_NAME).read_text())["recipe"]["seed"] == 4
    assert _sha256(dest / "model.safetensors") != weights

    foreign = tmp_path / "not-ours"
    foreign.mkdir()
    (foreign / "README.md").write_text("my notes")
    with pytest.raises(FileExistsError):
        build_tiny_llm(foreign)
    assert (foreign / "README.md").read_text() == "my notes"


def test_concurrent_builds_build_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    dest = tmp_path / "shared-llm"
    code = (
        "import sys, pathlib; from llmhost.tiny_models import build_tiny_llm; "
        "p = build_tiny_llm(pathlib.Path(sys.argv[1]), seed=5); "
        "print((p / '.complete').read_text())"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(dest)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    markers = [json.loads(out) for out, _ in results]
    # One process built, the other waited on the lock and found the finished build.
    assert markers[0] == markers[1] == json.loads((dest / MARKER_NAME).read_text())
    assert not list(tmp_path.glob(".*.tmp-*"))

"""Where a route's files are read from (llmhost.estimate.files): a local directory, the
Hugging Face cache at the pinned revision (whole shards only), or the Hub's file sizes
with --online; and what to run when they are in none of these."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from llmhost.estimate import RouteEstimate, estimate_route
from tests.estimate.support import QWEN, QWEN_AWQ, awq_gemm_bytes, config, dense_params, route, sparse

# ---- the Hugging Face cache ---------------------------------------------------------------


def cache_snapshot(
    hub: Path, repo: str, revision: str, files: dict[str, bytes | int], ref: str | None = None
) -> Path:
    """Lay files out as huggingface_hub does: blobs/<hash>, snapshots/<rev>/name -> blob."""
    repo_dir = hub / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / revision
    for name, content in files.items():
        blob = repo_dir / "blobs" / f"{revision}-{name.replace('/', '_')}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            blob.write_bytes(content)
        elif content >= 0:
            sparse(blob, content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref is not None:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / ref).write_text(revision)
    return snapshot


REV_MAIN = "a" * 40
REV_PINNED = "b" * 40


def test_reads_the_cache_snapshot_of_the_main_branch(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    snapshot = cache_snapshot(
        hub,
        "Qwen/Qwen2.5-7B-Instruct",
        REV_MAIN,
        {n: (QWEN / n).read_bytes() for n in ("config.json", "model.safetensors.index.json")},
        ref="main",
    )
    est = estimate_route(route("agent", "Qwen/Qwen2.5-7B-Instruct", max_model_len=8192), cache_dir=hub)
    assert est.weights_bytes == 2 * dense_params(config(QWEN), qkv_bias=True)
    assert est.source is not None and str(snapshot) in est.source


def test_honours_the_pinned_revision_and_sums_the_shards(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    repo = "Qwen/Qwen2.5-7B-Instruct-AWQ"
    total = awq_gemm_bytes(config(QWEN_AWQ))
    cache_snapshot(hub, repo, REV_MAIN, {"config.json": (QWEN / "config.json").read_bytes()}, ref="main")
    cache_snapshot(
        hub,
        repo,
        REV_PINNED,
        {
            "config.json": (QWEN_AWQ / "config.json").read_bytes(),
            "model-00001-of-00002.safetensors": 4_000_000_000,
            "model-00002-of-00002.safetensors": total - 4_000_000_000,
        },
    )
    pinned = estimate_route(route("coder", repo, max_model_len=8192, revision=REV_PINNED), cache_dir=hub)
    assert pinned.weights_bytes == total
    # The main branch's snapshot has a config but no weights: the KV part is still known.
    main_branch = estimate_route(route("coder", repo, max_model_len=8192), cache_dir=hub)
    assert main_branch.need_bytes is None and main_branch.kv_cache_bytes == pinned.kv_cache_bytes
    assert main_branch.unknown_reason == "weights not in the cache: llmhost pull coder"


def test_a_half_downloaded_shard_is_not_counted(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    files: dict[str, bytes | int] = {
        "config.json": (QWEN_AWQ / "config.json").read_bytes(),
        "model-00001-of-00002.safetensors": -1,  # a link whose blob never arrived
    }
    cache_snapshot(hub, "Qwen/Qwen2.5-7B-Instruct-AWQ", REV_MAIN, files, ref="main")
    est = estimate_route(route("coder", "Qwen/Qwen2.5-7B-Instruct-AWQ"), cache_dir=hub)
    assert est.weights_bytes is None and est.unknown_reason == "weights not in the cache: llmhost pull coder"


def test_not_in_the_cache_says_what_to_run(tmp_path: Path) -> None:
    est = estimate_route(route("chat", "meta-llama/Llama-3.1-8B-Instruct"), cache_dir=tmp_path / "hub")
    assert est == RouteEstimate(None, None, None, "not in the cache: llmhost pull chat (or check --online)")
    assert est.need_bytes is None and est.engine_bytes is None


def test_online_is_refused_while_the_hub_is_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    est = estimate_route(route("chat", "meta-llama/Llama-3.1-8B-Instruct"), cache_dir=tmp_path, online=True)
    assert est.unknown_reason == "not in the cache and HF_HUB_OFFLINE is set: llmhost pull chat"


def test_online_reads_the_hub_file_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub's answer stood in for (no network here): model_info's sibling sizes and the
    config.json download are all the estimate asks of it."""
    import huggingface_hub
    from huggingface_hub.hf_api import RepoSibling

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    total = awq_gemm_bytes(config(QWEN_AWQ))
    siblings = [
        RepoSibling("config.json", size=841),
        RepoSibling("model-00001-of-00002.safetensors", size=4_000_000_000),
        RepoSibling("model-00002-of-00002.safetensors", size=total - 4_000_000_000),
    ]
    asked: list[tuple[str, str | None, bool]] = []

    def model_info(
        self: object, repo: str, *, revision: str | None = None, files_metadata: bool = False
    ) -> Any:
        asked.append((repo, revision, files_metadata))
        return type("Info", (), {"siblings": siblings, "sha": REV_PINNED})()

    def download(repo: str, name: str, **kwargs: Any) -> str:
        assert kwargs["revision"] == REV_PINNED
        return str(QWEN_AWQ / name)

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    repo = "Qwen/Qwen2.5-7B-Instruct-AWQ"
    est = estimate_route(route("coder", repo, max_model_len=8192), cache_dir=tmp_path, online=True)
    assert asked == [(repo, None, True)]
    assert est.weights_bytes == total and est.source == f"the Hugging Face Hub ({repo})"


def test_a_model_that_is_neither_a_directory_nor_a_repo_id(tmp_path: Path) -> None:
    missing = estimate_route(route("coder", tmp_path / "nowhere"))
    assert missing.unknown_reason == f"{tmp_path / 'nowhere'} is not a model directory"
    bad = estimate_route(route("coder", "not a repo id!"), cache_dir=tmp_path)
    assert (
        bad.unknown_reason is not None
        and "neither a directory nor a Hugging Face repo id" in bad.unknown_reason
    )

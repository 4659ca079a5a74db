"""`llmhost pull` against a stand-in Hub (tests/hub.py): what it fetches, where, at which revision.

The command runs as it would on the user's machine (`python -m llmhost pull`), with
HF_ENDPOINT pointed at the stand-in and HF_HUB_OFFLINE unset. The same stand-in then
serves diffusers' and vLLM's own downloads: what they fetch is what `pull` fetched, so
the first load after a pull downloads nothing more.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub import EMBEDDING_FILES, LLM_FILES, SD35_MEDIUM_SIZES, Repo, StandInHub, repository
from tests.pull.test_selection import EMBEDDING_SELECTION, T5, WITHOUT_T5

SD35 = "stabilityai/stable-diffusion-3.5-medium"
LLM = "org/llm"
EMBED = "org/embedding"
MAIN = "a" * 40
PINNED = "b" * 40
LLM_SELECTION = [
    "config.json",
    "generation_config.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
]


@pytest.fixture
def hub() -> Iterator[StandInHub]:
    repos = {
        SD35: Repo({MAIN: repository(list(SD35_MEDIUM_SIZES), MAIN)}, {"main": MAIN}),
        LLM: Repo(
            {MAIN: repository(LLM_FILES, MAIN), PINNED: repository(LLM_FILES, PINNED)},
            {"main": MAIN, "v1.0": PINNED},
        ),
        EMBED: Repo({MAIN: repository(EMBEDDING_FILES, MAIN)}, {"main": MAIN}),
    }
    with StandInHub(repos) as running:
        yield running


def config(tmp_path: Path, *, t5: bool = False, chat_revision: str | None = None) -> Path:
    path = tmp_path / "models.toml"
    text = f'[routes.vision]\nkind = "diffusion"\nmodel = "{SD35}"\n'
    text += f"[routes.vision.pipeline]\ntext_encoder_3 = {str(t5).lower()}\n"
    text += f'[routes.chat]\nkind = "llm"\nmodel = "{LLM}"\n'
    if chat_revision:
        text += f'[routes.chat.engine]\nrevision = "{chat_revision}"\n'
    path.write_text(text)
    return path


def environment(hub: StandInHub, **extra: str) -> dict[str, str]:
    unset = ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_HOME", "HF_HUB_CACHE", "HUGGING_FACE_HUB_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return env | {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1", **extra}


def pull(tmp_path: Path, hub: StandInHub, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmhost", "pull", *args],
        capture_output=True,
        text=True,
        env=environment(hub, **env),
        timeout=120,
        cwd=tmp_path,
    )


def snapshot_files(cache: Path, repo: str, commit: str) -> set[str]:
    folder = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / commit
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_dry_run_lists_files_and_sizes_and_downloads_nothing(tmp_path: Path, hub: StandInHub) -> None:
    cache = tmp_path / "hf"
    result = pull(tmp_path, hub, "--config", str(config(tmp_path)), "--dry-run", HF_HOME=str(cache))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"vision: {SD35} at main ({MAIN[:12]}): 18 files" in out
    assert f"chat: {LLM} at main ({MAIN[:12]}): 8 files" in out
    listed = [line.split()[-1] for line in out.splitlines() if line.startswith("  ")]
    assert listed == WITHOUT_T5 + LLM_SELECTION
    assert "Total: 26 files" in out
    # Nothing in the cache, and no weights sent: only the JSON files the choice depends on.
    assert not [p for p in cache.rglob("*") if p.is_file()]
    assert hub.files_fetched(SD35) == {"model_index.json"}
    assert hub.files_fetched(LLM) == {"model.safetensors.index.json"}


@pytest.mark.parametrize("t5", [False, True])
def test_pull_fetches_the_selection_into_the_cache_serve_reads(
    tmp_path: Path, hub: StandInHub, t5: bool
) -> None:
    # No HF_HOME in the environment: the cache comes from .env, as `serve` reads it.
    home = tmp_path / "srv" / ".cache"
    (tmp_path / ".env").write_text(f"HF_HOME={home}\n")
    result = pull(tmp_path, hub, "--config", str(config(tmp_path, t5=t5)), "vision")
    assert result.returncode == 0, result.stderr
    expected = set(WITHOUT_T5) | (set(T5) if t5 else set())
    assert snapshot_files(home / "hub", SD35, MAIN) == expected
    assert hub.files_fetched(SD35) == expected
    assert (home / "hub" / f"models--{SD35.replace('/', '--')}" / "refs" / "main").read_text() == MAIN
    # The plan (files and size) is printed before anything downloads.
    lines = result.stdout.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith(f"vision: {SD35} at main"))
    fetching = lines.index(f"vision: fetching {SD35}")
    assert summary < fetching and f": {len(expected)} files, " in lines[summary]
    assert "Cache: " + str(home / "hub") in lines[0]


def test_pull_honours_the_revision_pin(tmp_path: Path, hub: StandInHub) -> None:
    cache = tmp_path / "hf"
    result = pull(
        tmp_path, hub, "--config", str(config(tmp_path, chat_revision="v1.0")), "chat", HF_HOME=str(cache)
    )
    assert result.returncode == 0, result.stderr
    asked = {(r.kind, r.revision) for r in hub.requests if r.repo == LLM}
    # The tag is resolved once, then every file comes from the commit it names; main is never asked.
    assert ("info", "v1.0") in asked and {rev for kind, rev in asked if kind == "file"} == {PINNED}
    assert all(rev != "main" and rev != MAIN for _, rev in asked)
    assert snapshot_files(cache / "hub", LLM, PINNED) == set(LLM_SELECTION)
    assert (cache / "hub" / "models--org--llm" / "refs" / "v1.0").read_text() == PINNED
    config_json = cache / "hub" / "models--org--llm" / "snapshots" / PINNED / "config.json"
    assert PINNED in config_json.read_text()


def test_a_cache_this_user_may_not_write_stops_before_any_download(tmp_path: Path, hub: StandInHub) -> None:
    # Root writes anywhere, so the tests (run as root here) use the rule that stops root
    # too: a cache owned by another user (the service user under systemd) is refused, since
    # root would leave files there that user cannot update, and its owner is named. As any
    # other user, a folder of one's own made read-only: refused, with no one to run as.
    home = tmp_path / "srv"
    (home / "hub").mkdir(parents=True)
    root = os.geteuid() == 0
    if root:
        os.chown(home / "hub", pwd.getpwnam("nobody").pw_uid, -1)
    else:
        (home / "hub").chmod(0o555)
    result = pull(tmp_path, hub, "--config", str(config(tmp_path)), "vision", HF_HOME=str(home))
    assert result.returncode == 2
    assert f"{home / 'hub'}" in result.stderr and "Nothing was downloaded" in result.stderr
    if root:
        assert "run the download as nobody: sudo -u nobody env HF_HOME=" + str(home) in result.stderr
        assert result.stderr.rstrip().endswith(f"pull --config {tmp_path / 'models.toml'} vision")
    else:
        assert "sudo" not in result.stderr
    assert hub.requests == []  # refused before the Hub was asked anything
    assert not list((home / "hub").iterdir())


def test_a_cache_that_cannot_be_created_stops_too(tmp_path: Path, hub: StandInHub) -> None:
    (tmp_path / "file").write_text("")
    home = tmp_path / "file" / "cache"  # below a regular file: no user, root included, can create it
    result = pull(tmp_path, hub, "--config", str(config(tmp_path)), HF_HOME=str(home))
    assert result.returncode == 2
    assert f"{tmp_path / 'file'} is not a directory" in result.stderr and hub.requests == []
    assert not (Path.home() / ".cache" / "huggingface" / "hub" / "models--org--llm").exists()


def test_diffusers_fetches_what_pull_fetched(tmp_path: Path, hub: StandInHub) -> None:
    """diffusers' own download (what a load does online), with the components llmhost passes
    as None for text_encoder_3 = false, against the same repository."""
    script = (
        "import sys\n"
        "from diffusers import StableDiffusion3Pipeline\n"
        "kwargs = {'text_encoder_3': None, 'tokenizer_3': None}\n"
        "StableDiffusion3Pipeline.download(sys.argv[1], cache_dir=sys.argv[2], **kwargs)\n"
        "StableDiffusion3Pipeline.download(sys.argv[1], cache_dir=sys.argv[3])\n"
    )
    without, with_t5 = tmp_path / "without", tmp_path / "with"
    done = subprocess.run(
        [sys.executable, "-c", script, SD35, str(without), str(with_t5)],
        capture_output=True,
        text=True,
        env=environment(hub),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert snapshot_files(without, SD35, MAIN) == set(WITHOUT_T5)
    assert snapshot_files(with_t5, SD35, MAIN) == set(WITHOUT_T5) | set(T5)


def test_vllm_fetches_the_weights_pull_fetched(tmp_path: Path, hub: StandInHub) -> None:
    """vLLM's default loader's download (load_format "auto" settles on "hf": these patterns,
    its default ignore_patterns) takes the same weights out of the repository."""
    script = (
        "import sys\n"
        "from vllm.model_executor.model_loader.weight_utils import download_weights_from_hf\n"
        "download_weights_from_hf(sys.argv[1], sys.argv[2], ['*.safetensors', '*.bin', '*.pt'],\n"
        "                         ignore_patterns=['original/**/*'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, LLM, str(tmp_path)],
        capture_output=True,
        text=True,
        env=environment(hub),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    weights = {n for n in LLM_SELECTION if n.startswith("model")}
    assert snapshot_files(tmp_path, LLM, MAIN) == weights


def test_an_embedding_route_gets_the_module_configs_vllm_reads(tmp_path: Path, hub: StandInHub) -> None:
    """After the pull, vLLM's own readers of the sentence-transformers files (the pooling
    type, the Dense projections, the tokenizer's max_seq_length) find them in the cache:
    the right pooling, and nothing more fetched from the Hub."""
    cache = tmp_path / "hf"
    models = tmp_path / "models.toml"
    models.write_text(f'[routes.embed]\nkind = "embedding"\nmodel = "{EMBED}"\n')
    result = pull(tmp_path, hub, "--config", str(models), HF_HOME=str(cache))
    assert result.returncode == 0, result.stderr
    assert snapshot_files(cache / "hub", EMBED, MAIN) == set(EMBEDDING_SELECTION)
    assert hub.files_fetched(EMBED) == set(EMBEDDING_SELECTION)  # no onnx/, no openvino/
    script = (
        "import json, sys\n"
        "from vllm.transformers_utils import config as c\n"
        "repo = sys.argv[1]\n"
        "print(json.dumps({\n"
        "    'pooling': {k: str(v) for k, v in (c.get_pooling_config(repo, None) or {}).items()},\n"
        "    'dense': c.try_get_dense_modules(repo, None),\n"
        "    'tokenizer': c.get_sentence_transformer_tokenizer_config(repo, None),\n"
        "    'dense_types': sorted(c._DENSE_MODULE_TYPES),\n"
        "}))\n"
    )
    fetched = len(hub.requests)
    done = subprocess.run(
        [sys.executable, "-c", script, EMBED],
        capture_output=True,
        text=True,
        env=environment(hub, HF_HOME=str(cache)),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    read = json.loads(done.stdout.strip().splitlines()[-1])
    assert read["pooling"] == {"use_activation": "True", "seq_pooling_type": "LAST"}
    assert read["dense"] is None and read["tokenizer"]["max_seq_length"] == 8192
    assert [r for r in hub.requests[fetched:] if r.kind == "file" and r.method == "GET"] == []
    # The selection takes a Dense module's weights by its class name: vLLM's types all end in it.
    assert all(t.endswith(".Dense") for t in read["dense_types"])


# ---- `llmhost check --gpu-memory` with nothing in the cache ----------------------------------


def check(tmp_path: Path, hub: StandInHub, *args: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmhost",
            "check",
            "--config",
            str(config(tmp_path)),
            "--gpu-memory",
            "16",
            *args,
        ],
        capture_output=True,
        text=True,
        env=environment(hub, HF_HOME=str(tmp_path / "hf")),
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    fit = result.stdout[result.stdout.index("Fit estimate for") :]
    return fit[: fit.index("\n\n")] if "\n\n" in fit else fit


def test_check_prints_one_pull_hint_for_all_routes_not_in_the_cache(tmp_path: Path, hub: StandInHub) -> None:
    fit = check(tmp_path, hub)
    rows = [line for line in fit.splitlines() if line.split()[:1] in (["vision"], ["chat"])]
    assert len(rows) == 2 and all(row.endswith("unknown: not in the cache") for row in rows)
    hints = [line for line in fit.splitlines() if "llmhost pull" in line]
    assert hints == [
        "Not in the cache: vision, chat. `llmhost pull` fetches them (`llmhost pull --dry-run` prints "
        "the download size), or `llmhost check --online` estimates them from the Hub's metadata, "
        "with the download size."
    ]
    assert hub.requests == []


def test_check_online_adds_up_what_pull_would_download(tmp_path: Path, hub: StandInHub) -> None:
    from llmhost.pull import human_size

    sd35 = repository(list(SD35_MEDIUM_SIZES), MAIN)
    llm = repository(LLM_FILES, MAIN)
    total = sum(len(sd35[n]) for n in WITHOUT_T5) + sum(len(llm[n]) for n in LLM_SELECTION)
    hints = [line for line in check(tmp_path, hub, "--online").splitlines() if "llmhost pull" in line]
    assert hints == [
        "Not in the cache (figures from the Hub's metadata): vision, chat. "
        f"`llmhost pull` downloads {human_size(total)} for them."
    ]

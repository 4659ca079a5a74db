"""Environment overrides models.toml; HF_TOKEN reaches the loaders under both names."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmhost.config import ConfigError, load_catalog
from llmhost.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def test_environment_overrides_models_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDLE_SECONDS", "42")
    monkeypatch.setenv("START_TIMEOUT_SECONDS", "99")
    monkeypatch.setenv("PREWARM_ROUTES", "coder, agent")
    monkeypatch.setenv("VISION_MODEL_ID", "stabilityai/stable-diffusion-xl-base-1.0")
    monkeypatch.setenv("VISION_MAX_EDGE", "768")
    monkeypatch.setenv("VISION_ENABLE_TILING", "true")
    catalog = Settings(_env_file=None).apply_to(load_catalog(REPO / "models.toml"))
    assert catalog.host.idle_seconds == 42
    assert catalog.host.start_timeout_seconds == 99
    assert catalog.host.prewarm == ("coder", "agent")
    vision = catalog.routes["vision"]
    assert vision.model == "stabilityai/stable-diffusion-xl-base-1.0"
    assert vision.pipeline.max_edge == 768 and vision.pipeline.enable_tiling
    assert vision.pipeline.enable_safety_checker  # untouched keys keep the file's value


def test_bad_override_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREWARM_ROUTES", "nosuchroute")
    with pytest.raises(ConfigError, match="nosuchroute"):
        Settings(_env_file=None).apply_to(load_catalog(REPO / "models.toml"))


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("VLLM_API_KEY=sekrit\nLLMHOST_PORT=9001\n")
    settings = Settings(_env_file=env)
    assert settings.api_key == "sekrit" and settings.llmhost_port == 9001
    assert "sekrit" not in repr(settings)


def test_hf_token_is_exported_under_both_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_abc")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    Settings(_env_file=None).export_hub_token()
    assert os.environ["HUGGING_FACE_HUB_TOKEN"] == "hf_abc"


def test_an_empty_numeric_variable_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("IDLE_SECONDS=\nSTART_TIMEOUT_SECONDS=120\nVISION_MAX_EDGE=\nLLMHOST_PORT=\n")
    monkeypatch.setenv("START_TIMEOUT_SECONDS", "")  # empty in the environment: .env's value counts
    monkeypatch.delenv("IDLE_SECONDS", raising=False)
    settings = Settings(_env_file=env)
    assert settings.idle_seconds is None and settings.vision_max_edge is None
    assert settings.start_timeout_seconds == 120 and settings.llmhost_port == 8000
    catalog = settings.apply_to(load_catalog(REPO / "models.toml"))
    assert catalog.host.idle_seconds == load_catalog(REPO / "models.toml").host.idle_seconds


# ---- the weights cache: one answer for serve, pull and check ---------------------------------

CACHE_VARIABLES = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME")
SERVED = """
import json
from llmhost.settings import Settings
settings = Settings()
cache = settings.weights_cache()
settings.export_cache_dir()
from huggingface_hub import constants  # reads its variables once, here
print(json.dumps({"hub": str(cache.hub), "serve_hub": str(cache.serve_hub), "hf": constants.HF_HUB_CACHE}))
"""


def served(tmp_path: Path, dotenv: str, **env: str) -> dict[str, str]:
    """In a fresh process started in `tmp_path`: the cache weights_cache names (`hub`, where
    pull writes; `serve_hub`, where serve reads), and where huggingface_hub, imported after
    serve's export_cache_dir, really looks (`hf`)."""
    (tmp_path / ".env").write_text(dotenv)
    base = {k: v for k, v in os.environ.items() if k not in CACHE_VARIABLES}
    result = subprocess.run(
        [sys.executable, "-c", SERVED],
        cwd=tmp_path,
        env=base | {"PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, str] = json.loads(result.stdout)
    return answer


def test_a_cache_this_user_can_write_is_the_one_serve_and_pull_use(tmp_path: Path) -> None:
    home = tmp_path / "srv" / ".cache"
    found = served(tmp_path, f"HF_HOME={home}\n")
    assert found == {"hub": str(home / "hub"), "serve_hub": str(home / "hub"), "hf": str(home / "hub")}
    assert home.is_dir()  # serve creates it


def test_a_default_this_user_cannot_create_sends_serve_alone_to_the_hugging_face_default(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("")
    home = tmp_path / "file" / "cache"  # below a regular file: no user, root included, can create it
    xdg = tmp_path / "xdg"
    found = served(tmp_path, f"HF_HOME={home}\n", XDG_CACHE_HOME=str(xdg))
    # pull is pointed at the configured cache (and refuses it); serve reads the default.
    assert found["hub"] == str(home / "hub")
    assert found["serve_hub"] == found["hf"] == str(xdg / "huggingface" / "hub")
    # HF_HUB_CACHE places the weights whatever HF_HOME falls back to.
    hub = tmp_path / "hub-cache"
    found = served(tmp_path, f"HF_HOME={home}\n", XDG_CACHE_HOME=str(xdg), HF_HUB_CACHE=str(hub))
    assert found == {"hub": str(hub), "serve_hub": str(hub), "hf": str(hub)}


def test_a_cache_the_environment_sets_is_used_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    home = tmp_path / "file" / "cache"
    found = served(tmp_path, "", HF_HOME=str(home))
    assert found == {"hub": str(home / "hub"), "serve_hub": str(home / "hub"), "hf": str(home / "hub")}


@pytest.mark.parametrize(
    ("dotenv", "env", "hub"),
    [
        ("HF_HOME={tmp}/srv\n", {"HF_HOME": ""}, "{tmp}/srv/hub"),  # empty is unset, for the libraries too
        ("HF_HOME=~/cache\n", {"HOME": "{tmp}/home"}, "{tmp}/home/cache/hub"),
        ("", {"HF_HOME": "{tmp}/hf", "HUGGINGFACE_HUB_CACHE": "{tmp}/old"}, "{tmp}/old"),  # the old name
    ],
)
def test_the_cache_is_where_huggingface_hub_looks(
    tmp_path: Path, dotenv: str, env: dict[str, str], hub: str
) -> None:
    tmp = str(tmp_path)
    found = served(tmp_path, dotenv.format(tmp=tmp), **{k: v.format(tmp=tmp) for k, v in env.items()})
    assert found == {"hub": hub.format(tmp=tmp), "serve_hub": hub.format(tmp=tmp), "hf": hub.format(tmp=tmp)}


def test_serve_says_where_it_goes_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")
    for name in CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    settings = Settings(_env_file=None, hf_home=tmp_path / "file" / "cache")
    with caplog.at_level(logging.WARNING, logger="llmhost"):
        settings.export_cache_dir()
    assert "HF_HOME" not in os.environ  # the libraries' own default, XDG_CACHE_HOME/huggingface
    assert f"{tmp_path / 'file' / 'cache'} is not writable" in caplog.text
    assert f"using the Hugging Face default cache {tmp_path / 'xdg' / 'huggingface'}" in caplog.text

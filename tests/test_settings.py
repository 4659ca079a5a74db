"""Environment overrides models.toml; HF_TOKEN reaches the loaders under both names."""

from __future__ import annotations

import os
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

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


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_a_bad_value_names_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    from llmhost.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IDLE_SECONDS", raising=False)
    if where == ".env":
        (tmp_path / ".env").write_text("IDLE_SECONDS=ten\n")
    else:
        (tmp_path / ".env").write_text("IDLE_SECONDS=600\n")  # the environment wins, and is named
        monkeypatch.setenv("IDLE_SECONDS", "ten")
    for command in ("check", "serve"):
        assert main([command, "--config", str(REPO / "models.toml")]) == 2
        err = capsys.readouterr().err
        assert "IDLE_SECONDS=ten" in err and "valid number" in err, err
        source = f"in {tmp_path / '.env'}" if where == ".env" else "in the environment"
        assert f"({source})" in err, err


def test_a_bad_secret_is_named_but_not_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from llmhost.settings import explain_invalid

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, vllm_api_key=["not", "a", "string"])
    message = explain_invalid(caught.value)
    assert message.startswith("VLLM_API_KEY (") and "'not'" not in message

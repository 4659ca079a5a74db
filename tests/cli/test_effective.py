"""The settings table `llmhost check` prints (llmhost.cli.effective): each setting's value
in force and where it came from (the environment, .env, models.toml, --config or the
default), and the values the host works out for itself spelled out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmhost.cli import main
from llmhost.cli.effective import effective
from llmhost.config import parse_catalog
from llmhost.settings import Settings

TWO_ROUTES = "[routes.a]\nkind = 'llm'\nmodel = 'org/a'\n[routes.b]\nkind = 'llm'\nmodel = 'org/b'\n"


def test_check_prints_each_setting_with_where_it_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("IDLE_SECONDS", "START_TIMEOUT_SECONDS", "PREWARM_ROUTES", "VLLM_API_KEY", "LLMHOST_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("IDLE_SECONDS=300\nVLLM_API_KEY=s3cret-key\n")
    monkeypatch.setenv("LLMHOST_PORT", "8011")
    monkeypatch.setenv("vision_max_edge", "512")  # names are case-insensitive, as pydantic reads them
    config = tmp_path / "models.toml"
    config.write_text(
        "[host]\nstart_timeout_seconds = 120\n"
        "[routes.coder]\nkind = 'llm'\nmodel = 'org/coder'\n"
        "[routes.vision]\nkind = 'diffusion'\nmodel = 'org/sd'\n"
    )
    assert main(["check", "--config", str(config), "--gpu-memory", "16"]) == 0
    out = capsys.readouterr().out
    settings = out[out.index("Settings (") : out.index("Fit estimate for")]  # before the fit table
    header = settings.splitlines()[1]
    value_at, from_at = header.index("VALUE"), header.index("FROM")
    table = {
        line[:value_at].strip(): (line[value_at:from_at].strip(), line[from_at:].strip())
        for line in settings.splitlines()[2:]
        if line.strip()
    }
    assert table["LLMHOST_CONFIG"] == (str(config), "--config")
    assert table["LLMHOST_PORT"] == ("8011", "env")
    assert table["LLMHOST_HOST"] == ("127.0.0.1", "default")
    assert table["VLLM_API_KEY"] == ("set", ".env")
    assert "s3cret-key" not in out
    assert table["[host] idle_seconds"] == ("300", ".env (IDLE_SECONDS)")
    assert table["[host] start_timeout_seconds"] == ("120", str(config))
    assert table["[host] policy"] == ("exclusive", "default")
    assert table["[host] loading_feedback"] == ("false", "default")
    assert table["VISION_MAX_EDGE"] == ("512", "env -> vision")
    # Every [host] key is listed.
    from llmhost.config import HostConfig

    assert all(f"[host] {key} " in settings for key in HostConfig.model_fields)


def test_auto_values_are_spelled_out_and_a_set_one_is_shown_as_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("IDLE_SECONDS", "START_TIMEOUT_SECONDS", "PREWARM_ROUTES", "LLMHOST_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    rows = {name: (value, where) for name, value, where in effective(Settings(), parse_catalog(TWO_ROUTES))}
    assert rows["LLMHOST_CONFIG"] == ("models.toml", "default")  # no --config
    # Two routes at the defaults: 30 + 60 + (45 + 20) + 300 s (llmhost.lifecycle.bounds).
    assert rows["[host] max_wait_seconds"] == ("auto: 455 s (the worst swap these settings allow)", "default")
    assert rows["[host] engine_margin_gib"] == ("auto: measured, else 1 GiB", "default")
    value, where = rows["[host] standby_ram_gib"]
    assert re.fullmatch(r"auto: \d+\.\d GiB \(40% of RAM\)", value) and where == "default"
    assert rows["[host] prewarm"] == ("none", "default")  # an empty list, as a word
    assert rows["[host] loading_feedback"] == ("false", "default")  # as models.toml spells it
    set_here = parse_catalog(
        "[host]\nmax_wait_seconds = 42.5\nstandby_ram_gib = 8\n" + TWO_ROUTES, "mine.toml"
    )
    rows = {name: (value, where) for name, value, where in effective(Settings(), set_here, Path("mine.toml"))}
    assert rows["LLMHOST_CONFIG"] == ("mine.toml", "--config")
    assert rows["[host] max_wait_seconds"] == ("42.5", "mine.toml")
    assert rows["[host] standby_ram_gib"] == ("8", "mine.toml")

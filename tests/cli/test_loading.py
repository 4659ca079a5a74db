"""Settings and models.toml as the commands load them (llmhost/cli/loading.py).

A `.env` or models.toml that the user running llmhost cannot read: one line naming the
file and the fix, exit status 2 (which systemd/llmhost.service does not restart). A bad
value: one line naming the variable and where it came from, never a secret's value.

Real `llmhost` subprocesses on real files with mode 000. Root reads any file, so as root
the command runs with the capabilities that let it do so dropped (setpriv).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmhost.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DROP = "-dac_override,-dac_read_search"
MODELS = '[routes.coder]\nkind = "llm"\nmodel = "org/coder"\nserved_names = ["coder-fast"]\n'


def _llmhost(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "llmhost", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux): cannot make a file unreadable")
        command = [setpriv, f"--bounding-set={DROP}", f"--inh-caps={DROP}", *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHOST_", "VLLM_API_KEY"))}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "models.toml").write_text(MODELS)
    (tmp_path / ".env").write_text("IDLE_SECONDS=300\n")
    return tmp_path


def _one_line_error(result: subprocess.CompletedProcess[str], path: Path, mode: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert "Traceback" not in result.stderr
    assert line.startswith(f"llmhost: {path}: permission denied for user ")
    assert f"sudo chmod {mode} {path}" in line and "sudo chgrp " in line
    return line


@pytest.mark.parametrize("command", ["check", "serve"])
def test_unreadable_env_file(workdir: Path, command: str) -> None:
    env_file = workdir / ".env"
    env_file.chmod(0)
    _one_line_error(_llmhost(workdir, command), env_file, "640")


def test_unreadable_models_toml(workdir: Path) -> None:
    config = workdir / "models.toml"
    config.chmod(0)
    _one_line_error(_llmhost(workdir, "check"), config, "644")


def test_readable_files_still_check(workdir: Path) -> None:
    (workdir / ".env").chmod(0o640)
    result = _llmhost(workdir, "check")
    assert result.returncode == 0, result.stderr
    assert "300s" in result.stdout  # IDLE_SECONDS from .env applied


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

    from llmhost.cli.loading import explain_invalid

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, vllm_api_key=["not", "a", "string"])
    message = explain_invalid(caught.value)
    assert message.startswith("VLLM_API_KEY (") and "'not'" not in message

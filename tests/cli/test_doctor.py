"""`llmhost check` as the doctor: its warnings and its "Next:" line, each from a real state
(a socket bound here, a file in .env, a cache laid out as the Hub's, a unit file)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmhost.cli import doctor
from tests.cli.support import Doctor, Report, free_port


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

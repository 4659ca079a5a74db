"""`llmhost pull` error paths, run as the real command against a stand-in Hub endpoint.

There is no network here, so a tiny local HTTP server answers as the Hugging Face Hub
does for gated, licence-pending and missing repositories (status + X-Error-Code), and
the real huggingface_hub client turns that into its own exceptions.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ANSWERS = {
    "gated": (401, "GatedRepo", "Access to model org/gated is restricted. You must be authenticated."),
    "pending": (403, "GatedRepo", "Access to model org/pending is restricted: accept the conditions."),
    "missing": (404, "RepoNotFound", "Repository not found"),
}


class _Hub(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        name = next((key for key in ANSWERS if f"/org/{key}" in self.path), "missing")
        status, code, message = ANSWERS[name]
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "%s"}' % message.encode())

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def pull(tmp_path: Path, hub: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "models.toml"
    config.write_text(
        "\n".join(
            f'[routes.{name}]\nkind = "llm"\nmodel = "org/{name}"' for name in ("gated", "pending", "missing")
        )
        + f'\n[routes.local]\nkind = "llm"\nmodel = "{tmp_path}"\n'
    )
    environment = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    environment |= {"HF_ENDPOINT": hub, "HF_HOME": str(tmp_path / "hf"), **env}
    return subprocess.run(
        [sys.executable, "-m", "llmhost", "pull", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        cwd=tmp_path,
    )


def test_gated_model_without_token(tmp_path: Path, hub: str) -> None:
    result = pull(tmp_path, hub, "gated")
    assert result.returncode == 1
    assert "org/gated is gated" in result.stderr and "set HF_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_licence_not_accepted_with_token(tmp_path: Path, hub: str) -> None:
    result = pull(tmp_path, hub, "pending", HF_TOKEN="hf_test")
    assert result.returncode == 1
    assert "accept the licence at https://huggingface.co/org/pending" in result.stderr
    assert "hf_test" not in result.stderr + result.stdout


def test_unknown_model(tmp_path: Path, hub: str) -> None:
    result = pull(tmp_path, hub, "missing")
    assert result.returncode == 1
    assert "org/missing was not found" in result.stderr


def test_offline_mode_says_to_unset_it(tmp_path: Path, hub: str) -> None:
    result = pull(tmp_path, hub, "missing", HF_HUB_OFFLINE="1")
    assert result.returncode == 1
    assert "Unset HF_HUB_OFFLINE" in result.stderr and "not in the cache" in result.stderr
    assert "network" not in result.stderr and "Traceback" not in result.stderr


def test_no_network(tmp_path: Path) -> None:
    result = pull(tmp_path, "http://127.0.0.1:9", "missing", HF_HUB_OFFLINE="0")
    assert result.returncode == 1
    assert "unreachable" in result.stderr and "Check the network" in result.stderr
    assert "HF_HUB_OFFLINE" not in result.stderr


def test_local_paths_and_unknown_routes(tmp_path: Path, hub: str) -> None:
    result = pull(tmp_path, hub, "local")
    assert result.returncode == 0 and "local path, nothing to download" in result.stdout
    result = pull(tmp_path, hub, "nosuch")
    assert result.returncode == 2 and "no route named nosuch" in result.stderr

"""`llmhost serve` under systemd's `Type=notify`: a real `llmhost serve` subprocess and a
real unix datagram socket standing in for systemd's $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmhost.cli.notify import Notifier

REPO = Path(__file__).resolve().parents[2]
MODELS = '[routes.coder]\nkind = "llm"\nmodel = "org/coder"\nserved_names = ["coder-fast"]\n'
SELF_CHECK = '"GET /healthz HTTP/1.1" 200'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        yield sock, path


class _Output:
    """The subprocess's combined output, read without blocking."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.text = ""

    def read(self) -> str:
        while select.select([self.fd], [], [], 0)[0]:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                break
            self.text += chunk.decode(errors="replace")
        return self.text


def _receive(sock: socket.socket, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([sock], [], [], 0.2)[0]:
            return sock.recv(4096).decode()
        assert proc.poll() is None, "llmhost serve exited before notifying"
    raise AssertionError("no notification in time")


def test_serve_reports_ready_after_healthz_and_stopping_at_shutdown(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, address = notify_socket
    (tmp_path / "models.toml").write_text(MODELS)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHOST_", "VLLM_API_KEY"))}
    env |= {
        "NOTIFY_SOCKET": address,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),
        "HF_HOME": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmhost", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = _Output(proc)
    try:
        ready = _receive(sock, proc, timeout=120)
        # Everything llmhost logged before it sent the datagram is in the pipe by now.
        logged = output.read()
        assert ready.splitlines()[0] == "READY=1", ready
        assert "Uvicorn running on" in logged, logged
        assert SELF_CHECK in logged, "READY=1 before /healthz answered through the socket"
        assert logged.index("Uvicorn running on") < logged.index(SELF_CHECK)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}

        proc.send_signal(signal.SIGTERM)
        stopping = _receive(sock, proc, timeout=30)
        assert stopping.splitlines()[0] == "STOPPING=1", stopping
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Nothing else was sent (no second READY, nothing from engine processes).
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)


def test_serve_without_notify_socket_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert notifier.address == ""
    notifier.send("READY=1")  # a no-op, not an error


def test_abstract_namespace_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"llmhost-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        notifier = Notifier()
        assert "NOTIFY_SOCKET" not in os.environ, "children (engine processes) must not inherit it"
        notifier.send("READY=1", "STATUS=serving")
        assert sock.recv(4096) == b"READY=1\nSTATUS=serving"

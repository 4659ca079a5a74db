"""`llmhost serve`: it refuses a LAN address without a key, and after a stop the last log line is
the last thing that takes time (no slow interpreter teardown)."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llmhost.cli import main

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.engine  # imports vLLM in the served process (seconds of CPU)
def test_exit_follows_the_last_log_line_at_once(tiny_models: object, tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text(f'[routes.chat]\nkind = "llm"\nmodel = "{tiny_models.llm}"\n')  # type: ignore[attr-defined]
    host = subprocess.Popen(
        [sys.executable, "-m", "llmhost", "serve", "--config", str(config), "--port", str(_free_port())],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[tuple[float, str] | None] = queue.Queue()

    def read() -> None:
        assert host.stderr is not None
        for line in host.stderr:
            lines.put((time.monotonic(), line))
        lines.put(None)  # the end of its stderr: every line has been read

    threading.Thread(target=read, daemon=True).start()
    try:
        # vLLM imported in the background after start-up: the teardown that used to take
        # 1.5-2.5 s is the interpreter's, with vLLM and torch loaded.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            item = lines.get(timeout=deadline - time.monotonic())
            if item is None or "engine libraries imported" in item[1]:
                break
        if item is None or "engine libraries imported" not in item[1]:
            pytest.fail("the engine libraries were never imported")
        host.send_signal(signal.SIGTERM)
        assert host.wait(timeout=60) == 0
        exited = time.monotonic()
    finally:
        if host.poll() is None:
            host.kill()
    last = None
    while (item := lines.get(timeout=30)) is not None:  # read to the end of its stderr
        last = item
    assert last is not None and "stopped on signal" in last[1], last
    lag = exited - last[0]
    print(f"exit {lag:.2f} s after the last log line")
    assert lag < 0.75


def test_serve_refuses_lan_without_key(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--config", str(REPO / "models.toml"), "--host", "0.0.0.0"])
    assert code == 2
    assert "VLLM_API_KEY" in capsys.readouterr().err

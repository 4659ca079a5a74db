"""Who holds the port `serve` wants (llmhost/cli/ports.py): named in check's warning and in
serve's refusal, an llmhost already running, a Windows program under WSL2, a hidden pid."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from llmhost.cli import main, ports
from tests.cli.support import Doctor, free_port
from tests.fake_llmhost import fake_llmhost


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

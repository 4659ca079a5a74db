"""`llmhost check` run as the doctor tests see it: in a directory of its own, with its
report split into the Warnings block and the "Next:" line."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmhost.cli import doctor, main, ports

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

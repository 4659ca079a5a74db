"""`llmhost status` against a live host (fake backend) and an absent one."""

from __future__ import annotations

import pytest

from llmhost.cli import main
from llmhost.config import parse_catalog
from tests.apphelp import ServerThread, make_app
from tests.fakes import Recorder
from tests.lifecycle.test_engines import wait_until

CATALOG = parse_catalog(
    """
[host]
prewarm = ["coder"]
[routes.coder]
kind = "llm"
model = "org/coder"
served_names = ["coder-fast"]
[routes.chat]
kind = "llm"
model = "org/chat"
served_names = ["chat-general"]
"""
)


def test_status_prints_the_routes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "k3y")
    rec = Recorder()
    with ServerThread(make_app(CATALOG, api_key="k3y", factory=rec.factory)) as server:
        manager = server.app.state.host.manager
        assert wait_until(lambda: manager.route_state("coder").value == "ready", 5)  # prewarmed
        assert main(["status", "--url", server.url]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ROUTE", "MODEL", "STATE"]
    coder = next(line for line in lines if line.startswith("coder "))
    assert "coder-fast" in coder and "ready" in coder
    chat = next(line for line in lines if line.startswith("chat "))
    assert "stopped" in chat and "never" in chat
    assert "GPU: not watched" in out


def test_status_exits_non_zero_when_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 1
    assert "no llmhost answering" in capsys.readouterr().err


def test_status_says_when_the_key_is_wrong(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "wrong")
    with ServerThread(make_app(CATALOG, api_key="right", factory=Recorder().factory)) as server:
        assert main(["status", "--url", server.url]) == 1
    assert "refused the key" in capsys.readouterr().err

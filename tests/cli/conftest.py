"""The `doc` fixture: `llmhost check` in a directory of its own (tests/cli/support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import Doctor


@pytest.fixture
def doc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Doctor:
    return Doctor(tmp_path, monkeypatch, capsys)

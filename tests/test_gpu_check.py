"""scripts/gpu_check.py --routes, the command users run on their card, run here on the tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.engine

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def test_route_check_loads_each_route_and_reports_it(tiny_models: Any, tmp_path: Path) -> None:
    out = tmp_path / "routes.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--only", "chat,vision", "--json", str(out)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()  # vLLM logs to stdout too: the table comes last
    table = lines[max(i for i, line in enumerate(lines) if line.startswith("GPU: ")) :]
    assert table[1].split()[:2] == ["ROUTE", "LOAD"]
    rows = {line.split()[0]: line for line in table[2:]}
    assert set(rows) == {"chat", "vision"} and all(row.endswith("ok") for row in rows.values())
    report = json.loads(out.read_text())
    by_route = {r["route"]: r for r in report["routes"]}
    for route in ("chat", "vision"):
        assert by_route[route]["ok"] is True
        assert by_route[route]["load_seconds"] > 0
        assert by_route[route]["first_token_seconds"] > 0
    if report["gpu"]["total_gib"] is None:  # no NVML here: the memory columns say so
        assert "NVML absent" in table[0] and "NVML absent" in rows["chat"]
        assert by_route["chat"]["free_after_unload_gib"] is None
    else:  # an NVIDIA host: memory was read after every unload
        assert all(r["free_after_unload_gib"] is not None for r in report["routes"])


def test_route_check_fails_loudly(tiny_models: Any, tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text(
        '[routes.broken]\nkind = "llm"\nmodel = "/nonexistent/model-dir"\n'
        '[routes.broken.engine]\ndtype = "float32"\n'
    )
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--routes", str(config)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "broken" in output and ("FAILED" in output or "does not exist" in output)


def test_unknown_route_is_a_clear_error(tiny_models: Any) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--only", "nosuch"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no such route(s): nosuch" in done.stderr


def test_standby_check_reports_cold_start_probe_and_availability(tiny_models: Any, tmp_path: Path) -> None:
    out = tmp_path / "standby.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--standby", "--tiny", "--only", "chat,vision", "--json", str(out)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    (chat,) = report["routes"]  # the image route has no standby: not measured
    assert chat["route"] == "chat" and chat["ok"] is True
    assert chat["cold_start_seconds"] > 0 and chat["probe"]
    lines = done.stdout.splitlines()
    row = next(
        line
        for line in lines[max(i for i, x in enumerate(lines) if x.startswith("GPU:")) :]
        if line.startswith("chat ")
    )
    if chat["standby"].startswith("unavailable"):  # vLLM's CPU build: no sleep mode
        assert "cpu" in chat["standby"] and chat["levels"] == []
        assert "standby unavailable" in row
    else:  # an NVIDIA host with vLLM's CUDA build: both levels, each wake verified
        assert [level["level"] for level in chat["levels"]] == [1, 2]
        assert all(level["probe_matches"] for level in chat["levels"])

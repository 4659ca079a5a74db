"""scripts/gpu_check.py --routes, the command users run on their card, run here on the tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmhost.gpu_check.running import another_llmhost, llmhost_pids
from tests.cli.support import free_port
from tests.fake_llmhost import fake_llmhost

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"


def script_env(**extra: str) -> dict[str, str]:
    """The script's environment: offline, and a port no llmhost answers on unless a test
    puts one there (a developer's own llmhost on 8000 would make the script refuse)."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "LLMHOST_PORT": str(free_port()),
    } | extra


@pytest.mark.engine
def test_route_check_loads_each_route_and_reports_it(tiny_models: Any, tmp_path: Path) -> None:
    out = tmp_path / "routes.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--only", "chat,vision", "--json", str(out)],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()  # vLLM logs to stdout too: the table comes last
    table = lines[max(i for i, line in enumerate(lines) if line.startswith("GPU: ")) :]
    assert table[1].split()[:2] == ["ROUTE", "LOAD"]
    end = table.index("")  # the cold-start phases follow the table
    rows = {line.split()[0]: line for line in table[2:end]}
    assert set(rows) == {"chat", "vision"} and all(row.endswith("ok") for row in rows.values())
    report = json.loads(out.read_text())
    by_route = {r["route"]: r for r in report["routes"]}
    # Where chat's cold start went, in vLLM's own figures: printed and saved.
    phases = {p["phase"]: p for p in by_route["chat"]["cold_start_phases"]}
    assert {"engine_process", "weights", "engine_init", "engine_ready"} <= set(phases)
    assert 0 < phases["engine_ready"]["seconds"] <= by_route["chat"]["load_seconds"]
    assert table[end + 1].startswith("Cold start phases")
    assert table[end + 2].startswith("  chat: engine_process ")
    assert by_route["vision"]["cold_start_phases"] is None  # a diffusers pipeline: no vLLM phases
    for route in ("chat", "vision"):
        assert by_route[route]["ok"] is True
        assert by_route[route]["load_seconds"] > 0
        assert by_route[route]["first_token_seconds"] > 0
    if report["gpu"]["total_gib"] is None:  # no NVML here: the memory columns say so
        assert "NVML absent" in table[0] and "NVML absent" in rows["chat"]
        assert by_route["chat"]["free_after_unload_gib"] is None
    else:  # an NVIDIA host: memory was read after every unload
        assert all(r["free_after_unload_gib"] is not None for r in report["routes"])


@pytest.mark.engine
def test_route_check_fails_loudly(tiny_models: Any, tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text(
        '[routes.broken]\nkind = "llm"\nmodel = "/nonexistent/model-dir"\n'
        '[routes.broken.engine]\ndtype = "float32"\n'
    )
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--routes", str(config)],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "broken" in output and ("FAILED" in output or "does not exist" in output)


@pytest.mark.engine
def test_unknown_route_is_a_clear_error(tiny_models: Any) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--only", "nosuch"],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no such route(s): nosuch" in done.stderr


@pytest.mark.engine
def test_standby_check_reports_cold_start_probe_and_availability(tiny_models: Any, tmp_path: Path) -> None:
    out = tmp_path / "standby.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--standby", "--tiny", "--only", "chat,vision", "--json", str(out)],
        env=script_env(),
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


def test_refuses_to_start_while_an_llmhost_answers_on_the_port(tmp_path: Path) -> None:
    with fake_llmhost(tmp_path) as running:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--tiny", "--only", "chat"],
            env=script_env(LLMHOST_HOST="127.0.0.1", LLMHOST_PORT=str(running.port)),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    assert done.returncode == 2
    assert (
        f"another llmhost is running (one answers at http://127.0.0.1:{running.port}/healthz)" in done.stderr
    )
    assert "`sudo systemctl stop llmhost`" in done.stderr and "docs/gpu.md" in done.stderr
    assert "ROUTE" not in done.stdout  # refused before anything was loaded


def test_an_llmhost_holding_the_gpu_is_found_among_its_processes(tmp_path: Path) -> None:
    """NVML's compute process list is the one input given here (no NVIDIA driver): the
    processes in it are real, and only the llmhost among them counts."""
    with fake_llmhost(tmp_path) as running:
        assert llmhost_pids([os.getpid(), running.pid]) == [running.pid]
        refusal = another_llmhost("127.0.0.1", free_port(), gpu_pids=[running.pid])
        assert refusal is not None and f"pid {running.pid} of one holds the GPU" in refusal
        assert "sudo systemctl stop llmhost" in refusal
    # This process is no llmhost, and no llmhost answers on a free port: the check may run.
    assert another_llmhost("127.0.0.1", free_port(), gpu_pids=[os.getpid()]) is None

"""The README's first command: `llmhost demo` comes up and the curl lines it prints work; its
configuration mirrors the shipped routes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llmhost.cli import main
from tests.hostproc import free_port as _free_port
from tests.hostproc import healthy as _healthy
from tests.hostproc import wait_until

REPO = Path(__file__).resolve().parents[2]


def printed_commands(lines: list[str]) -> list[str]:
    """The curl commands of the demo's banner, backslash continuations joined."""
    commands: list[str] = []
    for line in lines:
        text = line.strip()
        if commands and commands[-1].endswith("\\"):
            commands[-1] = commands[-1][:-1] + " " + text
        elif text.startswith("curl "):
            commands.append(text)
    return commands


@pytest.mark.engine
def test_demo_serves_and_its_examples_work(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"} | {"HF_HUB_OFFLINE": "1"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "llmhost", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert demo.stdout is not None
        banner: list[str] = []
        while not any("/stats" in line for line in banner):
            line = demo.stdout.readline()
            assert line, "demo exited before printing its examples"
            banner.append(line)
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _healthy(url), 60)
        routes = httpx.get(f"{url}/routes").json()["routes"]
        assert [r["route"] for r in routes] == ["coder", "chat", "general", "coderslow", "agent", "vision"]

        # The banner says where the demo's models.toml is, and how to copy it.
        config = Path(next(line for line in banner if line.startswith("Its configuration: "))[19:].strip())
        assert config.is_file() and config.name.endswith(".toml")
        copy = next(line for line in banner if "cp " in line)
        copy = copy[copy.index("cp ") :].rstrip().removesuffix(")")
        assert subprocess.run(["bash", "-c", copy], cwd=tmp_path).returncode == 0
        assert main(["check", "--config", str(tmp_path / "models.toml"), "--gpu-memory", "16"]) == 0

        commands = printed_commands(banner)
        assert len(commands) == 4
        outputs = []
        for command in commands:
            result = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, (command, result.stderr)
            outputs.append(result.stdout)
        models, chat, _, stats = outputs
        assert "coder-fast" in {m["id"] for m in json.loads(models)["data"]}
        assert json.loads(chat)["choices"][0]["message"]["role"] == "assistant"
        assert (tmp_path / "fox.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        by_route = {m["route"]: m for m in json.loads(stats)["models"]}
        # exclusive: the image request swapped the coder engine out
        assert by_route["coder"]["loads"] == 1 and by_route["coder"]["state"] == "stopped"
        assert by_route["vision"]["state"] == "ready" and by_route["vision"]["swaps"] == 1
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=90)
        except subprocess.TimeoutExpired:
            demo.kill()


def test_demo_config_mirrors_the_shipped_routes(tiny_models: object) -> None:
    from llmhost.cli.demo import demo_config_text
    from llmhost.config import load_catalog, parse_catalog

    shipped = load_catalog(REPO / "models.toml")
    demo = parse_catalog(demo_config_text(tiny_models))  # type: ignore[arg-type]
    assert list(demo.routes) == list(shipped.routes)
    for name, route in shipped.routes.items():
        assert demo.routes[name].served_names == route.served_names, name
        assert demo.routes[name].kind == route.kind
        assert demo.routes[name].serving == route.serving, name
    assert len({r.model for r in demo.routes.values() if r.kind == "llm"}) >= 2  # swaps show

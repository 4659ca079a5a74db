"""The real coding agents the API tests run headless: Claude Code (Anthropic's Messages API)
and the Codex CLI (OpenAI's Responses API), installed from npm once into a cache directory.

Also what records the requests they send: a pure ASGI middleware on the test app.

`python -m tests.api.agents` installs both (what .ci/run does before the tests); a test
that cannot install one is skipped with npm's reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmhost-tests"


@dataclass(frozen=True)
class NpmTool:
    package: str
    version: str
    command: str

    @property
    def prefix(self) -> Path:
        return CACHE / f"{self.package.rsplit('/', 1)[-1]}-{self.version}"

    @property
    def executable(self) -> Path:
        return self.prefix / "node_modules" / ".bin" / self.command

    def install(self) -> Path:
        """The installed command; raises RuntimeError with the reason when it cannot be."""
        if self.executable.exists():
            return self.executable
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed")
        self.prefix.mkdir(parents=True, exist_ok=True)
        spec = f"{self.package}@{self.version}"
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(self.prefix), spec],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0 or not self.executable.exists():
            raise RuntimeError(f"npm install {spec} failed: {(done.stderr or done.stdout).strip()[-500:]}")
        return self.executable


CLAUDE_CODE = NpmTool("@anthropic-ai/claude-code", "2.1.332", "claude")
CODEX = NpmTool("@openai/codex", "0.171.0", "codex")

# Their first request, in the tiny models' tokens (a 606-token vocabulary: about twice a
# real tokenizer's count): Claude Code 2.1.332 about 31,300, the Codex CLI about 25,000.
# The tiny models' 32,768 positions leave Claude Code no room, so the agents' routes get
# 65,536 (the 64 MiB KV cache of tiny_engine_args holds 131,072 tokens of `llm`).
AGENT_CONTEXT = 65536


def agent_route(name: str, model: object, served: str) -> str:
    """A [routes.NAME] table for the tiny `llm` with a tool parser and the long context the
    agents need (tests.apphelp.tiny_llm_route, with more positions)."""
    from llmhost.config.text import toml_table
    from llmhost.tiny_models import tiny_engine_args

    engine = {
        **tiny_engine_args(),
        "max_model_len": AGENT_CONTEXT,
        "hf_overrides": {"max_position_embeddings": AGENT_CONTEXT},
    }
    lines = [
        *toml_table(f"routes.{name}", {"kind": "llm", "model": str(model), "served_names": [served]}),
        *toml_table(f"routes.{name}.engine", engine),
        *toml_table(f"routes.{name}.serving", {"tool_parser": "hermes"}),
    ]
    return "\n".join(lines) + "\n"


def installed(tool: NpmTool) -> Path:
    """The tool's command, or the test is skipped with the reason it could not be installed."""
    import pytest

    try:
        return tool.install()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{tool.package}@{tool.version} cannot be installed: {exc}")


# ---- what the agents sent -----------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None


@dataclass
class RecordRequests:
    """ASGI middleware: each request's method, path, headers and response status."""

    app: Any
    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        seen = Seen(scope["method"], scope["path"], headers)
        self.seen.append(seen)

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen.status = message["status"]
            await send(message)

        await self.app(scope, receive, sending)


def agent_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for an agent run: its own HOME, nothing of the developer's."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


if __name__ == "__main__":
    for tool in (CLAUDE_CODE, CODEX):
        try:
            tool.install()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            print(f"{tool.package}@{tool.version}: {exc} (its tests will be skipped)", file=sys.stderr)

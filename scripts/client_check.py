"""Round trips with the real clients: Open WebUI, the Continue CLI, Claude Code and the Codex
CLI against `llmhost demo`.

Run it as `scripts/client-check` (docs/clients.md has its last output). It installs Open
WebUI (pip, its own venv), the Continue CLI, Claude Code and the Codex CLI (npm) into a
cache directory, starts `llmhost demo` on a free port with a key, a small recording proxy
in front of it, Open WebUI with the shipped clients/open-webui.env, `cn -p` with the
shipped clients/continue/config.yaml, `claude -p` with clients/claude-code/settings.json
and `codex exec` with clients/codex/config.toml; then prints one row per check and exits
1 if any failed.

The only changes to the shipped settings: the port (8000 -> the proxy's free port), the
key (the one this run made), Open WebUI's IMAGE_SIZE (128x128: the tiny demo pipeline
draws at most 192 pixels a side), and what no real install needs (OFFLINE_MODE,
WEBUI_AUTH=False and a throwaway data directory for Open WebUI; one model per Continue
config, so that each `cn -p` run uses the model under test). The chat row also gives
`coder-fast` a system prompt through Open WebUI's model settings and checks it arrives.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
OPEN_WEBUI_VERSION = "0.12.4"
CONTINUE_CLI_VERSION = "1.5.47"
CLAUDE_CODE_VERSION = "2.1.332"
CODEX_CLI_VERSION = "0.171.0"
CLIENTS = ("open-webui", "continue", "claude-code", "codex")  # --clients picks among these
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmhost-client-check"
SYSTEM_PROMPT = "You are the assistant of llmhost's client check."


# ---- results ------------------------------------------------------------------------


@dataclass
class Row:
    check: str
    ok: bool | None  # None: skipped
    detail: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, check: str, ok: bool | None, detail: str) -> None:
        self.rows.append(Row(check, ok, detail))
        mark = {True: "PASS", False: "FAIL", None: "SKIP"}[ok]
        print(f"[{mark}] {check}: {detail}", flush=True)

    def run(self, check: str, fn: Callable[[], str]) -> None:
        try:
            self.add(check, True, fn())
        except Skip as exc:
            self.add(check, None, str(exc))
        except Exception as exc:  # a failed check is a row, not the end of the run
            self.add(check, False, f"{type(exc).__name__}: {exc}"[:400])

    def table(self) -> str:
        width = max(len(r.check) for r in self.rows)
        lines = [f"{'check'.ljust(width)}  result  detail", f"{'-' * width}  ------  ------"]
        for r in self.rows:
            mark = {True: "pass", False: "FAIL", None: "skip"}[r.ok]
            lines.append(f"{r.check.ljust(width)}  {mark.ljust(6)}  {r.detail}")
        return "\n".join(lines)

    @property
    def failed(self) -> bool:
        return any(r.ok is False for r in self.rows)


class Skip(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# ---- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def started(
    name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[None]:
    """A process in its own session, output to `log`; stopped (SIGTERM, then SIGKILL) at exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        print(f"{name} stopped (exit {proc.returncode}); log: {log}", flush=True)


def wait_http(url: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


# ---- installs -------------------------------------------------------------------------


def install_open_webui(cache: Path) -> Path:
    venv = cache / f"open-webui-{OPEN_WEBUI_VERSION}"
    exe = venv / "bin" / "open-webui"
    if not exe.exists():
        python = shutil.which("python3.11") or sys.executable  # Open WebUI needs 3.11 or 3.12
        print(
            f"installing Open WebUI {OPEN_WEBUI_VERSION} into {venv} (a few minutes, several GB)", flush=True
        )
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"open-webui=={OPEN_WEBUI_VERSION}"], check=True
        )
    return exe


def install_npm(prefix: Path, spec: str, command: str) -> Path:
    """`command` of the npm package `spec`, installed into `prefix` on first use."""
    exe = prefix / "node_modules" / ".bin" / command
    if not exe.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise Skip("npm is not installed")
        print(f"installing {spec} into {prefix}", flush=True)
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), spec], check=True)
    return exe


def install_continue_cli(cache: Path) -> Path:
    return install_npm(cache / "continue-cli", f"@continuedev/cli@{CONTINUE_CLI_VERSION}", "cn")


def install_claude_code(cache: Path) -> Path:
    spec = f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"
    return install_npm(cache / f"claude-code-{CLAUDE_CODE_VERSION}", spec, "claude")


def install_codex_cli(cache: Path) -> Path:
    return install_npm(cache / f"codex-{CODEX_CLI_VERSION}", f"@openai/codex@{CODEX_CLI_VERSION}", "codex")


# ---- a recording proxy ----------------------------------------------------------------


@dataclass
class Seen:
    client: str
    method: str
    path: str
    body: dict[str, Any]
    status: int
    key_header: str  # which header carried a key: "authorization", "x-api-key" or ""


class Recorder:
    """A plain HTTP proxy to llmhost that keeps each request's body, so the checks can say
    what a client really sent (which model, whether tools went along)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.seen: list[Seen] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                with httpx.Client(timeout=600) as client:
                    reply = client.request(
                        self.command, recorder.upstream + self.path, content=raw, headers=headers
                    )
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                agent = self.headers.get("User-Agent", "")
                key_header = next((h for h in ("authorization", "x-api-key") if self.headers.get(h)), "")
                recorder.seen.append(
                    Seen(agent, self.command, self.path.split("?")[0], body, reply.status_code, key_header)
                )
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "content-encoding",
                    ):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = do_POST = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# ---- llmhost --------------------------------------------------------------------------


class Host:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}

    def served_names(self) -> list[str]:
        reply = httpx.get(f"{self.url}/openai/v1/models", headers=self.headers, timeout=30)
        reply.raise_for_status()
        return [m["id"] for m in reply.json()["data"]]

    def loads(self) -> dict[str, int]:
        reply = httpx.get(f"{self.url}/stats", headers=self.headers, timeout=30)
        reply.raise_for_status()
        return {m["route"]: m["loads"] for m in reply.json()["models"]}


# ---- Open WebUI -----------------------------------------------------------------------


def shipped_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return values


class OpenWebUI:
    def __init__(self, url: str) -> None:
        self.url = url
        self.headers: dict[str, str] = {}

    def signin(self) -> None:
        # WEBUI_AUTH=False: the empty-credential sign-in gives the single admin's token.
        reply = httpx.post(f"{self.url}/api/v1/auths/signin", json={"email": "", "password": ""}, timeout=60)
        reply.raise_for_status()
        self.headers = {"Authorization": f"Bearer {reply.json()['token']}"}

    def get(self, path: str) -> Any:
        reply = httpx.get(f"{self.url}{path}", headers=self.headers, timeout=120)
        check(reply.status_code == 200, f"GET {path}: {reply.status_code} {reply.text[:200]}")
        return reply.json()

    def post(self, path: str, body: dict[str, Any], timeout: float = 600) -> Any:
        reply = httpx.post(f"{self.url}{path}", json=body, headers=self.headers, timeout=timeout)
        check(reply.status_code == 200, f"POST {path}: {reply.status_code} {reply.text[:300]}")
        return reply.json()


def owui_models(owui: OpenWebUI, host: Host) -> str:
    listed = {m["id"] for m in owui.get("/api/models")["data"]}
    served = host.served_names()
    missing = [name for name in served if name not in listed]
    check(not missing, f"served by llmhost but not listed: {missing}")
    return f"all {len(served)} served names listed ({', '.join(served)})"


def owui_old_url(owui: OpenWebUI, host: Host, base: str, key: str) -> str:
    """The old stack's connection URL, without /v1, through Open WebUI's own connection check."""
    reply = owui.post("/openai/verify", {"url": f"{base}/openai", "key": key})
    listed = {m["id"] for m in reply.get("data", [])}
    check(set(host.served_names()) <= listed, f"verify listed {sorted(listed)}")
    return f"http://127.0.0.1:PORT/openai verified: {len(listed)} models"


def owui_chat(owui: OpenWebUI, host: Host, recorder: Recorder, model: str) -> str:
    # A default system prompt for the model, as Admin Panel > Settings > Models > edit sets it
    # (clients/open-webui.md); the chat must carry it to llmhost.
    owui.post(
        "/api/v1/models/create", {"id": model, "name": model, "meta": {}, "params": {"system": SYSTEM_PROMPT}}
    )
    before, seen = host.loads(), len(recorder.seen)
    messages = [{"role": "user", "content": "Write a haiku about GPUs."}]
    reply = owui.post(
        "/api/chat/completions", {"model": model, "messages": messages, "stream": False, "max_tokens": 32}
    )
    answer = reply["choices"][0]["message"]["content"]
    check(isinstance(answer, str) and answer != "", f"no answer: {str(reply)[:200]}")
    # What the browser asks for after each answer: a title, tags and follow-ups.
    history = [*messages, {"role": "assistant", "content": answer}]
    for task in ("title", "tags", "follow_up"):
        owui.post(
            f"/api/v1/tasks/{task}/completions", {"model": model, "messages": history, "chat_id": "check"}
        )
    after = host.loads()
    loaded = {
        route: after[route] - before.get(route, 0) for route in after if after[route] != before.get(route, 0)
    }
    models = sorted(
        {s.body.get("model", "?") for s in recorder.seen[seen:] if s.path.endswith("/chat/completions")}
    )
    check(
        len(loaded) == 1 and sum(loaded.values()) == 1,
        f"loads during the chat and its tasks: {loaded or 'none'}",
    )
    check(models == [model], f"Open WebUI sent requests for {models}")
    chat = next(s for s in recorder.seen[seen:] if s.path.endswith("/chat/completions"))
    system = [m.get("content") for m in chat.body.get("messages", []) if m.get("role") == "system"]
    check(SYSTEM_PROMPT in " ".join(map(str, system)), f"the model's system prompt was not sent: {system}")
    return (
        f"{model}: answer (with the model's system prompt) + title, tags, follow-ups on the same model; "
        f"loads {loaded} (one chat = one load)"
    )


def owui_image(owui: OpenWebUI, size: str) -> str:
    images = owui.post("/api/v1/images/generations", {"prompt": "a red fox in the snow"})
    check(isinstance(images, list) and len(images) >= 1, f"no image: {str(images)[:200]}")
    url = images[0]["url"]
    content = url if url.startswith("data:") else None
    if content is None:
        reply = httpx.get(
            f"{owui.url}{url}" if url.startswith("/") else url, headers=owui.headers, timeout=60
        )
        check(reply.status_code == 200, f"GET {url}: {reply.status_code}")
        png = reply.content
    else:
        png = base64.b64decode(content.split(",", 1)[1])
    check(png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    check(f"{width}x{height}" == size, f"{width}x{height}, expected IMAGE_SIZE {size}")
    return f"vision-diffusion, {width}x{height} PNG ({len(png)} bytes) stored by Open WebUI"


def owui_tool(owui: OpenWebUI) -> str:
    source = REPO / "clients" / "open-webui" / "searxng_search.py"
    if not source.exists():
        raise Skip("clients/open-webui/searxng_search.py does not exist yet")
    form = {
        "id": "llmhost_searxng_search",
        "name": "llmhost web search",
        "content": source.read_text(),
        "meta": {"description": "SearXNG through llmhost"},
    }
    owui.post("/api/v1/tools/create", form)
    tool = owui.get("/api/v1/tools/id/llmhost_searxng_search")
    specs = tool.get("specs") or []
    spec = next((s for s in specs if s.get("name") == "searxng_search"), None)
    check(spec is not None, f"no searxng_search in the tool's specs: {json.dumps(specs)[:300]}")
    assert spec is not None
    params = set(spec.get("parameters", {}).get("properties", {}))
    check({"query", "mode"} <= params, f"parameters {sorted(params)}")
    return f"registered; spec searxng_search({', '.join(sorted(params))})"


# ---- Continue CLI ---------------------------------------------------------------------


def continue_config(work: Path, model_id: str, base: str) -> Path:
    """The shipped config.yaml with only the model under test (pointed at the proxy)."""
    config = yaml.safe_load((REPO / "clients" / "continue" / "config.yaml").read_text())
    models = [m for m in config["models"] if m["model"] == model_id and "chat" in m.get("roles", ["chat"])]
    check(len(models) == 1, f"{model_id} is not a chat model of the shipped config.yaml")
    models[0]["apiBase"] = models[0]["apiBase"].replace("http://localhost:8000", base)
    config["models"] = models
    path = work / f"continue-{model_id}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cn_round_trip(
    cn: Path, work: Path, recorder: Recorder, key: str, model_id: str, want_native_tools: bool
) -> str:
    config = continue_config(work, model_id, f"http://127.0.0.1:{recorder.port}")
    home = work / "cn-home"
    home.mkdir(exist_ok=True)
    (home / ".continue").mkdir(exist_ok=True)
    # Continue resolves ${{ secrets.VLLM_API_KEY }} from ~/.continue/.env (or the environment).
    (home / ".continue" / ".env").write_text(f"VLLM_API_KEY={key}\n")
    env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
    env |= {"HOME": str(home), "CONTINUE_CLI_ENABLE_TELEMETRY": "0", "NO_COLOR": "1"}
    seen = len(recorder.seen)
    result = subprocess.run(
        [str(cn), "-p", "List the files in this directory.", "--config", str(config)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = (result.stdout + result.stderr).strip().replace("\n", " ")
    check(result.returncode == 0, f"cn exit {result.returncode}: {output[:300]}")
    requests = [s for s in recorder.seen[seen:] if s.path.endswith("/chat/completions")]
    check(requests != [], "cn sent no chat request")
    models = sorted({str(s.body.get("model")) for s in requests})
    check(models == [model_id], f"cn asked for {models}")
    check(all(s.status == 200 for s in requests), f"statuses {[s.status for s in requests]}")
    first = requests[0].body
    tools = first.get("tools") or []
    system = " ".join(
        m["content"] if isinstance(m.get("content"), str) else json.dumps(m.get("content"))
        for m in first.get("messages", [])
        if m.get("role") == "system"
    )
    if want_native_tools:
        check(len(tools) > 0, "no tools in the request")
        how = f"{len(tools)} tools sent as `tools`"
    elif tools:
        how = f"{len(tools)} tools sent as `tools` (native)"
    else:
        how = "no `tools` field; " + (
            "tools described in the system message" if "tool" in system.lower() else "no tools"
        )
    return f"{model_id}: exit 0, {len(requests)} request(s), {how}, prompt {len(json.dumps(first))} bytes"


def run_open_webui(
    report: Report,
    stack: contextlib.ExitStack[Any],
    owui_exe: Path,
    work: Path,
    host: Host,
    recorder: Recorder,
    key: str,
) -> None:
    """Open WebUI with the shipped open-webui.env (through the proxy), and its rows."""
    proxy = f"http://127.0.0.1:{recorder.port}"
    settings = shipped_env(REPO / "clients" / "open-webui.env")
    owui_env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "OPENAI_"))}
    owui_env |= {k: v.replace("http://127.0.0.1:8000", proxy) for k, v in settings.items()}
    owui_port = free_port()
    data = work / "open-webui"
    owui_env |= {
        # As systemd/open-webui.service does: llmhost's key only, own data dirs.
        "OPENAI_API_KEY": key,
        "IMAGES_OPENAI_API_KEY": key,
        "DATA_DIR": str(data),
        "STATIC_DIR": str(data / "static"),
        "HF_HOME": str(data / "cache"),
        # The tiny demo pipeline draws at most 192 pixels a side; 1024x1024 is SD 3.5's.
        "IMAGE_SIZE": "128x128",
        # This run only: no downloads, no login.
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "WEBUI_AUTH": "False",
        "WEBUI_SECRET_KEY": secrets.token_urlsafe(24),
    }
    serve = [str(owui_exe), "serve", "--host", "127.0.0.1", "--port", str(owui_port)]
    stack.enter_context(started("Open WebUI", serve, owui_env, work / "open-webui.log", cwd=work))
    owui = OpenWebUI(f"http://127.0.0.1:{owui_port}")
    try:
        wait_http(f"{owui.url}/health", 900, "Open WebUI")
        owui.signin()
        owui_up = True
    except Exception as exc:
        report.add("Open WebUI starts", False, f"{type(exc).__name__}: {exc}")
        owui_up = False
    if owui_up:
        report.run("Open WebUI lists every served name", lambda: owui_models(owui, host))
        report.run("Open WebUI connection at /openai (no /v1)", lambda: owui_old_url(owui, host, proxy, key))
        report.run("chat through Open WebUI, one load", lambda: owui_chat(owui, host, recorder, "coder-fast"))
        size = owui_env["IMAGE_SIZE"]
        report.run("image through Open WebUI's image API", lambda: owui_image(owui, size))
        report.run("SearXNG tool loads in Open WebUI", lambda: owui_tool(owui))


def run_continue(
    report: Report, cn: Path | None, reason: str, work: Path, recorder: Recorder, key: str
) -> None:
    """`cn -p` on the coder and agent routes, or both rows skipped with the reason."""
    if cn is None:
        report.add("cn -p on the coder route", None, reason)
        report.add("cn -p on the agent route, tools", None, reason)
        return
    report.run(
        "cn -p on the coder route",
        lambda: cn_round_trip(cn, work, recorder, key, "coder-fast", want_native_tools=False),
    )
    report.run(
        "cn -p on the agent route, tools",
        lambda: cn_round_trip(cn, work, recorder, key, "agent-tools", want_native_tools=True),
    )


# ---- the coding agents: Claude Code (Messages API), the Codex CLI (Responses API) ------


AGENT_MODEL = "agent-tools"  # what the shipped agent settings name: the /agent route


def agent_requests(recorder: Recorder, seen: int, path: str, key_header: str) -> list[Seen]:
    requests = [s for s in recorder.seen[seen:] if s.path == path]
    check(requests != [], f"no request to {path}: {[s.path for s in recorder.seen[seen:]]}")
    models = sorted({str(s.body.get("model")) for s in requests})
    check(models == [AGENT_MODEL], f"asked for {models}")
    check(all(s.status == 200 for s in requests), f"statuses {[s.status for s in requests]}")
    check(all(s.key_header == key_header for s in requests), f"the key came as {requests[0].key_header!r}")
    return requests


def run_agent(argv: list[str], work: Path, env: dict[str, str], name: str) -> None:
    result = subprocess.run(
        argv, cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900
    )
    output = (result.stdout + result.stderr).strip().replace("\n", " ")
    check(result.returncode == 0, f"{name} exit {result.returncode}: {output[-300:]}")


def claude_round_trip(claude: Path, work: Path, recorder: Recorder, key: str) -> str:
    """`claude -p` with the shipped settings.json in its ~/.claude (only the URL changed) and
    the key in ANTHROPIC_API_KEY, so it arrives as x-api-key."""
    home = work / "claude-home"
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    settings = json.loads((REPO / "clients" / "claude-code" / "settings.json").read_text())
    settings["env"]["ANTHROPIC_BASE_URL"] = f"http://127.0.0.1:{recorder.port}"
    (home / ".claude" / "settings.json").write_text(json.dumps(settings, indent=2))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    env |= {"HOME": str(home), "ANTHROPIC_API_KEY": key, "NO_COLOR": "1"}
    seen = len(recorder.seen)
    run_agent([str(claude), "-p", "List the files in this directory."], work, env, "claude")
    requests = agent_requests(recorder, seen, "/v1/messages", "x-api-key")
    first = requests[0].body
    return (
        f"{AGENT_MODEL}: exit 0, {len(requests)} request(s) to /v1/messages, key as x-api-key, "
        f"{len(first.get('tools') or [])} tools, prompt {len(json.dumps(first))} bytes"
    )


def codex_round_trip(codex: Path, work: Path, recorder: Recorder, key: str) -> str:
    """`codex exec` with the shipped config.toml as $CODEX_HOME/config.toml (only the URL
    changed) and the key in VLLM_API_KEY, the provider's env_key."""
    codex_home = work / "codex-home"
    codex_home.mkdir(exist_ok=True)
    shipped = (REPO / "clients" / "codex" / "config.toml").read_text()
    (codex_home / "config.toml").write_text(
        shipped.replace("http://localhost:8000", f"http://127.0.0.1:{recorder.port}")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    env |= {"HOME": str(work / "codex-user"), "CODEX_HOME": str(codex_home), "VLLM_API_KEY": key}
    seen = len(recorder.seen)
    run_agent(
        [str(codex), "exec", "--skip-git-repo-check", "List the files in this directory."], work, env, "codex"
    )
    requests = agent_requests(recorder, seen, "/openai/v1/responses", "authorization")
    first = requests[0].body
    return (
        f"{AGENT_MODEL}: exit 0, {len(requests)} request(s) to /openai/v1/responses, "
        f"{len(first.get('tools') or [])} tools, prompt {len(json.dumps(first))} bytes"
    )


# ---- main -----------------------------------------------------------------------------


def versions(owui: Path | None, cn: Path | None, agents: dict[str, Path]) -> str:
    parts = []
    if owui is not None:
        owui_version = subprocess.run(
            [
                str(owui.parent / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('open-webui'))",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        parts.append(f"open-webui {owui_version}")
    if cn is not None:
        cn_version = subprocess.run([str(cn), "--version"], capture_output=True, text=True).stdout.strip()
        parts.append(f"@continuedev/cli {cn_version}")
    for name, exe in agents.items():
        version = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout.strip()
        parts.append(f"{name} {version.split()[-1] if name == 'codex' else version.split()[0]}")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    from llmhost import __version__

    parts += [f"node {node}", f"llmhost {__version__}", f"python {sys.version.split()[0]}"]
    return ", ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"installs go here (default {DEFAULT_CACHE})"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    parser.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help=f"which clients to run, comma-separated (default all: {','.join(CLIENTS)})",
    )
    args = parser.parse_args()
    selected = set(args.clients.split(","))
    if not selected <= set(CLIENTS):
        parser.error(f"--clients: unknown {sorted(selected - set(CLIENTS))}; known: {', '.join(CLIENTS)}")
    args.cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="llmhost-client-check-"))
    report = Report()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

    owui_exe = install_open_webui(args.cache) if "open-webui" in selected else None
    cn: Path | None = None
    cn_reason = ""
    try:
        if "continue" in selected:
            cn = install_continue_cli(args.cache)
    except Skip as exc:
        cn_reason = str(exc)
    agents: dict[str, Path] = {}
    agent_reasons: dict[str, str] = {}
    for name, install in (("claude-code", install_claude_code), ("codex", install_codex_cli)):
        if name not in selected:
            continue
        try:
            agents[name] = install(args.cache)
        except (Skip, subprocess.CalledProcessError) as exc:
            agent_reasons[name] = str(exc)
    key = secrets.token_urlsafe(24)
    port = free_port()
    host = Host(f"http://127.0.0.1:{port}", key)
    demo_env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHOST_", "NOTIFY_SOCKET"))}
    demo_env |= {
        "VLLM_API_KEY": key,
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    demo = [sys.executable, "-m", "llmhost", "demo", "--port", str(port)]

    with contextlib.ExitStack() as stack:
        stack.enter_context(started("llmhost demo", demo, demo_env, work / "llmhost.log", cwd=work))
        wait_http(f"{host.url}/healthz", 600, "llmhost demo")
        recorder = Recorder(host.url)
        stack.callback(recorder.server.shutdown)

        if owui_exe is not None:
            run_open_webui(report, stack, owui_exe, work, host, recorder, key)

        if "continue" in selected:
            run_continue(report, cn, cn_reason, work, recorder, key)

        for name, row, round_trip in (
            ("claude-code", "claude -p on the agent route (Messages API)", claude_round_trip),
            ("codex", "codex exec on the agent route (Responses API)", codex_round_trip),
        ):
            if name not in selected:
                continue
            if name not in agents:
                report.add(row, None, agent_reasons[name])
                continue
            report.run(row, functools.partial(round_trip, agents[name], work, recorder, key))

    with (work / "requests.jsonl").open("w") as out:  # what the clients sent, for --keep
        for seen in recorder.seen:
            out.write(json.dumps(seen.__dict__) + "\n")
    print()
    print(f"scripts/client-check, {started_at}; {versions(owui_exe, cn, agents)}")
    print(report.table())
    if args.keep or report.failed:
        print(f"\nlogs and data: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())

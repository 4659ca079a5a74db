"""The lifecycle manager with real tiny vLLM engines: swaps, fit, idle unload, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from llmhost.config import Catalog, parse_catalog
from tests.apphelp import ServerThread, make_app, tiny_llm_route

pytestmark = pytest.mark.engine


def two_routes(tiny_models: Any, host: str) -> str:
    return (
        f"[host]\n{host}\n"
        + tiny_llm_route("coder", tiny_models.llm, "coder-fast")
        + tiny_llm_route("chat", tiny_models.llm_alt, "chat-general")
    )


def chat(url: str, model: str, max_tokens: int = 4) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def engine_processes() -> set[int]:
    """vLLM engine core and worker processes below this test process."""
    return {p.pid for p in psutil.Process().children(recursive=True) if _is_engine(p)}


def _is_engine(process: psutil.Process) -> bool:
    # vLLM names its processes VLLM::EngineCore and VLLM::Worker (not the resource
    # tracker, not llmhost's watchdog).
    try:
        return "VLLM::" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def wait_until(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return bool(check())


def test_exclusive_swaps_between_routes(tiny_models: Any) -> None:
    catalog: Catalog = parse_catalog(two_routes(tiny_models, 'policy = "exclusive"'))
    with ServerThread(make_app(catalog)) as server:
        manager = server.app.state.host.manager
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(chat, server.url, "coder-fast")
            assert wait_until(lambda: manager.route_state("coder").value == "loading", 10)
            # During the load (~15 s) the event loop stays free: admin endpoints and model
            # lists answer without waiting for it (bound generous for a busy CI machine).
            for path in ("/healthz", "/stats", "/v1/models", "/coder/v1/models"):
                started = time.monotonic()
                assert httpx.get(f"{server.url}{path}", timeout=5).status_code == 200
                assert time.monotonic() - started < 2.0, path
            loading = {m["route"]: m for m in httpx.get(f"{server.url}/stats").json()["models"]}["coder"]
            assert loading["state"] == "loading" and loading["waiting"] == 1
            assert first.result()["model"] == "coder-fast"
        assert manager.route_state("coder").value == "ready"
        assert chat(server.url, "chat-general")["model"] == "chat-general"
        assert manager.route_state("coder").value == "stopped"
        assert manager.route_state("chat").value == "ready"
        chat(server.url, "coder-fast")
        stats = {m["route"]: m for m in httpx.get(f"{server.url}/stats").json()["models"]}
        assert stats["coder"]["loads"] == 2 and stats["coder"]["swaps"] == 1
        assert stats["chat"]["loads"] == 1 and stats["chat"]["evictions"] == 1
    assert wait_until(lambda: not engine_processes(), 15)


def test_fit_keeps_both_and_idle_unload_stops_the_engine(tiny_models: Any) -> None:
    text = two_routes(tiny_models, 'policy = "fit"\nidle_seconds = 5')
    # coder must not idle out while chat loads; chat idles out quickly.
    text = text.replace('served_names = ["coder-fast"]', 'served_names = ["coder-fast"]\nidle_seconds = 600')
    with ServerThread(make_app(parse_catalog(text))) as server:
        manager = server.app.state.host.manager
        chat(server.url, "coder-fast")
        coder_processes = engine_processes()
        chat(server.url, "chat-general")
        assert manager.route_state("coder").value == "ready"
        assert manager.route_state("chat").value == "ready"
        chat_processes = engine_processes() - coder_processes
        assert coder_processes and chat_processes
        # chat is unused for idle_seconds: it unloads and its engine processes exit.
        assert wait_until(lambda: manager.route_state("chat").value == "stopped", 30)
        assert wait_until(lambda: not (engine_processes() & chat_processes), 15)
        assert manager.route_state("coder").value == "ready"
        assert coder_processes <= engine_processes()
    assert wait_until(lambda: not engine_processes(), 15)


def test_sigterm_with_a_stream_in_flight_leaves_no_engine(tiny_models: Any, tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text(two_routes(tiny_models, "drain_timeout_seconds = 20"))
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    host = subprocess.Popen(
        [sys.executable, "-m", "llmhost", "serve", "--config", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _healthy(url), 30)
        chat(url, "coder-fast")  # engine up
        children = {p.pid for p in psutil.Process(host.pid).children(recursive=True)}
        assert children
        body = {
            "model": "coder-fast",
            "prompt": "Once",
            "max_tokens": 400,
            "ignore_eos": True,
            "stream": True,
        }
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=120) as stream:
            lines = stream.iter_lines()
            next(lines)
            host.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        # The stream either finished normally or ended with an error event: never cut silently.
        assert rest and rest[-1] == "data: [DONE]"
        assert host.wait(timeout=90) == 0
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
    assert wait_until(lambda: not any(psutil.pid_exists(pid) and _alive(pid) for pid in children), 15)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _start_host(config: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`llmhost serve` on `config` in a process of its own, and its URL (not yet ready)."""
    port = _free_port()
    host = subprocess.Popen(
        [sys.executable, "-m", "llmhost", "serve", "--config", str(config), "--port", str(port)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return host, f"http://127.0.0.1:{port}"


def _engines_of(host: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """vLLM's engine processes below a host process."""
    return [p for p in psutil.Process(host.pid).children(recursive=True) if _is_engine(p)]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_sigkill_of_the_host_leaves_no_engine_behind(tiny_models: Any, tmp_path: Path) -> None:
    """vLLM's engine core does not notice its in-process host dying; our watchdog does."""
    config = tmp_path / "models.toml"
    config.write_text(two_routes(tiny_models, ""))
    host, url = _start_host(config)
    try:
        assert wait_until(lambda: _healthy(url), 30)
        chat(url, "coder-fast")
        engines = _engines_of(host)
        assert engines
    finally:
        host.kill()
        host.wait()
    started = time.monotonic()
    assert wait_until(lambda: not any(_alive(p.pid) for p in engines), 10)
    assert time.monotonic() - started < 10


def test_sigkill_during_a_load_leaves_no_engine_behind(tiny_models: Any, tmp_path: Path) -> None:
    """The watchdog knows an engine's processes from the moment they exist, not only
    once the load finished: a host killed mid-load must not leave them holding memory."""
    config = tmp_path / "models.toml"
    config.write_text(two_routes(tiny_models, ""))
    host, url = _start_host(config)
    engines: list[psutil.Process] = []
    try:
        assert wait_until(lambda: _healthy(url), 30)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(_chat_quietly, url, "coder-fast")

            def engine_started() -> bool:
                engines[:] = _engines_of(host)
                return bool(engines)

            assert wait_until(engine_started, 60)
            state = {m["route"]: m for m in httpx.get(f"{url}/stats").json()["models"]}["coder"]["state"]
            assert state == "loading"  # the engine process exists, the load is not done
            host.kill()
            host.wait()
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
    assert wait_until(lambda: not any(_alive(p.pid) for p in engines), 10)


def _chat_quietly(url: str, model: str) -> None:
    try:
        httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
            timeout=120,
        )
    except httpx.HTTPError:
        pass  # the host is killed under this request on purpose


def test_sigterm_during_a_load_exits_within_seconds(tiny_models: Any, tmp_path: Path) -> None:
    """A stop abandons a load in progress: the waiting request gets a 503, the engine's
    processes are gone, and the host exits 0 within seconds instead of sitting the load out."""
    config = tmp_path / "models.toml"
    config.write_text(two_routes(tiny_models, ""))
    host, url = _start_host(config)
    engines: list[psutil.Process] = []
    try:
        assert wait_until(lambda: _healthy(url), 30)
        with ThreadPoolExecutor(1) as pool:
            reply = pool.submit(
                httpx.post,
                f"{url}/v1/chat/completions",
                json={"model": "coder-fast", "messages": [{"role": "user", "content": "hi"}]},
                timeout=120,
            )

            def engine_started() -> bool:
                engines[:] = _engines_of(host)
                return bool(engines)

            assert wait_until(engine_started, 60)
            stopped_at = time.monotonic()
            host.send_signal(signal.SIGTERM)
            assert host.wait(timeout=60) == 0
            exit_seconds = time.monotonic() - stopped_at
            response = reply.result(timeout=10)
        print(f"exit {exit_seconds:.1f} s after SIGTERM during a load")
        assert exit_seconds < 20  # the tiny load alone takes ~20 s here, a real one minutes
        assert response.status_code == 503
        assert response.json()["error"]["message"]
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
    assert wait_until(lambda: not any(_alive(p.pid) for p in engines), 5)


def test_missing_model_path_evicts_nothing_and_says_why(tiny_models: Any, tmp_path: Path) -> None:
    """A route whose local path does not exist: `check` refuses the file, and a running
    host answers 503 naming the path without unloading the model that was serving."""
    missing = "/srv/llm/weights/does-not-exist"
    config = tmp_path / "models.toml"
    config.write_text(
        '[host]\npolicy = "exclusive"\n'
        + tiny_llm_route("coder", tiny_models.llm, "coder-fast")
        + f'[routes.broken]\nkind = "llm"\nmodel = "{missing}"\nserved_names = ["broken-model"]\n'
    )
    check = subprocess.run(
        [sys.executable, "-m", "llmhost", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 2
    assert f"the model path {missing} does not exist (route 'broken')" in check.stderr
    host, url = _start_host(config)
    try:
        assert wait_until(lambda: _healthy(url), 30)
        chat(url, "coder-fast")
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "broken-model", "messages": [{"role": "user", "content": "hi"}]},
            timeout=60,
        )
        assert response.status_code == 503
        message = response.json()["error"]["message"]
        assert f"the model path {missing} does not exist" in message and ".." not in message
        models = {m["route"]: m for m in httpx.get(f"{url}/stats").json()["models"]}
        assert models["coder"]["state"] == "ready" and models["coder"]["evictions"] == 0
        assert models["broken"]["state"] == "failed"
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(timeout=60)

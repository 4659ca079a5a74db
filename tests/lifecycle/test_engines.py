"""The lifecycle manager with real tiny vLLM engines: swaps, fit, idle unload, a killed
engine core under load, unload on demand, SIGTERM and SIGKILL.

Nothing here waits on wall-clock time: a test waits for the manager's state (on its own
event loop, `_state`), for engine processes to exit (tests.hostproc.wait_gone), or for
the host's log line that says something happened (tests.hostproc.HostProcess).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from llmhost.backends.vllm.backend import VllmBackend
from llmhost.config import Catalog, parse_catalog
from llmhost.lifecycle.state import ModelState
from tests.apphelp import ServerThread, make_app, tiny_llm_route, until, until_state
from tests.hostproc import HostProcess, alive, engines_below, wait_gone

pytestmark = pytest.mark.engine

BOUND = 300.0  # seconds a test waits for what must happen before it fails (a cold load is ~20 s)
DEBUG = {"LLMHOST_LOG_LEVEL": "debug"}  # the host logs when its engine's processes appear


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
    return {p.pid for p in engines_below(os.getpid())}


def _state(server: ServerThread, route: str, *states: ModelState) -> ModelState:
    """Wait, on the server's own event loop, until `route` is in one of `states`."""
    manager = server.app.state.host.manager
    reached: ModelState = server.run_soon(until_state(manager, route, *states)).result(BOUND)
    return reached


def _stats(url: str) -> dict[str, dict[str, Any]]:
    return {m["route"]: m for m in httpx.get(f"{url}/stats").json()["models"]}


class _HeldStart(VllmBackend):
    """A vLLM backend whose engine creation, in its worker thread, first waits for the
    test: a load that blocks a thread for as long as the test needs, as a real one does."""

    go = threading.Event()

    def _create_engine(self) -> Any:
        self.go.wait(BOUND)
        return super()._create_engine()


def test_exclusive_swaps_between_routes(tiny_models: Any) -> None:
    catalog: Catalog = parse_catalog(two_routes(tiny_models, 'policy = "exclusive"'))
    _HeldStart.go.clear()
    with ServerThread(make_app(catalog, factory=_HeldStart)) as server:
        manager = server.app.state.host.manager
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(chat, server.url, "coder-fast")
            _state(server, "coder", ModelState.LOADING)
            # While a load holds its thread the event loop stays free: admin endpoints and
            # model lists answer (how fast is measured in bench/, not here).
            for path in ("/healthz", "/stats", "/v1/models", "/coder/v1/models"):
                assert httpx.get(f"{server.url}{path}", timeout=60).status_code == 200, path
            loading = _stats(server.url)["coder"]
            assert loading["state"] == "loading" and loading["waiting"] == 1
            _HeldStart.go.set()
            assert first.result()["model"] == "coder-fast"
        assert manager.route_state("coder").value == "ready"
        assert chat(server.url, "chat-general")["model"] == "chat-general"
        assert manager.route_state("coder").value == "stopped"
        assert manager.route_state("chat").value == "ready"
        chat(server.url, "coder-fast")
        stats = _stats(server.url)
        assert stats["coder"]["loads"] == 2 and stats["coder"]["swaps"] == 1
        assert stats["chat"]["loads"] == 1 and stats["chat"]["evictions"] == 1
    assert not wait_gone(psutil.Process(pid) for pid in engine_processes())


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
        _state(server, "chat", ModelState.STOPPED)
        assert not wait_gone((psutil.Process(pid) for pid in chat_processes if alive(pid)), 15)
        assert manager.route_state("coder").value == "ready"
        assert coder_processes <= engine_processes()
    assert not wait_gone(psutil.Process(pid) for pid in engine_processes())


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    ok: bool
    what: str  # the failure's message, or how the request broke


def _one_request(http: httpx.Client, stream: bool) -> tuple[bool, str]:
    body = {"model": "coder-fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    if not stream:
        response = http.post("/v1/chat/completions", json=body)
        if response.status_code == 200:
            return True, ""
        return False, f"{response.status_code} {response.json()['error']['message']}"
    with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        if response.status_code != 200:
            response.read()
            return False, f"{response.status_code} {response.json()['error']['message']}"
        lines = [line for line in response.iter_lines() if line]
    errors = [line for line in lines if line.startswith("data: {") and '"error"' in line]
    if errors:
        return False, f"stream error event {errors[-1]}"
    return lines[-1:] == ["data: [DONE]"], f"stream ended with {lines[-1:]}"


def test_a_killed_engine_core_under_load_is_replaced_and_no_request_hangs(tiny_models: Any) -> None:
    """Four clients (one streaming) send requests without pause on kept-alive connections;
    the EngineCore process is killed. Requests fail, with the failure named, only until
    the model is loaded again; none is cut off, none hangs."""
    text = "[host]\nretry_backoff_seconds = 1\n" + tiny_llm_route("coder", tiny_models.llm, "coder-fast")
    with ServerThread(make_app(parse_catalog(text))) as server:
        manager = server.app.state.host.manager
        chat(server.url, "coder-fast")
        backend = manager.slots["coder"].backend
        core = [psutil.Process(p.pid) for p in backend.engine.engine_core.resources.engine_manager.processes]
        outcomes: list[Outcome] = []
        changed = threading.Condition()
        stop = threading.Event()
        killed_at: list[float] = []

        def client(streams: bool) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as http:
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        ok, what = _one_request(http, streams)
                    except httpx.HTTPError as exc:  # a dropped connection, a timeout: never expected
                        ok, what = False, f"transport error {type(exc).__name__}: {exc}"
                    with changed:
                        outcomes.append(Outcome(started, time.monotonic(), ok, what))
                        changed.notify_all()

        def served_after(moment: float) -> int:
            return sum(1 for o in outcomes if o.ok and o.started > moment)

        with ThreadPoolExecutor(4) as pool:
            clients = [pool.submit(client, n == 3) for n in range(4)]
            with changed:
                assert changed.wait_for(lambda: served_after(0) >= 8, BOUND)
            killed_at.append(time.monotonic())
            for process in core:
                process.kill()
            with changed:  # served again, by the new engine, several times
                assert changed.wait_for(lambda: served_after(killed_at[0]) >= 8, BOUND), outcomes[-5:]
            stop.set()
            for done in clients:
                done.result(timeout=150)  # every request ended within its own timeout
        # A stream's lease is released after its last chunk went out, so the client can be
        # done a moment before the host is: wait for the release (it wakes the scheduler).
        slot = manager.slots["coder"]
        idle = until(manager, lambda: not slot.active and not slot.waiting)
        server.run_soon(asyncio.wait_for(idle, BOUND)).result()
        stats = manager.snapshot()[0]
        assert stats["loads"] == 2 and stats["in_flight"] == 0 and stats["waiting"] == 0
    kill = killed_at[0]
    failures = [o for o in outcomes if not o.ok]
    recovered = min(o.ended for o in outcomes if o.ok and o.started > kill)
    assert failures, "the kill failed no request"
    for failure in failures:  # 503 or an error event naming the failure; no dropped connection
        assert "died" in failure.what and "transport error" not in failure.what, failure.what
        assert kill <= failure.ended <= recovered, failure
    assert all(o.ok for o in outcomes if o.started > recovered)  # no failure after the recovery
    window = max(f.ended for f in failures) - kill
    print(
        f"{len(failures)} of {len(outcomes)} requests failed, the last {window:.1f} s after the kill; "
        f"served again {recovered - kill:.1f} s after it"
    )
    assert window < BOUND
    assert not wait_gone(core, 15)


def test_unload_through_the_command_and_the_endpoint_stops_the_engine(
    tiny_models: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmhost.cli import main

    text = tiny_llm_route("coder", tiny_models.llm, "coder-fast")
    with ServerThread(make_app(parse_catalog(text))) as server:
        manager = server.app.state.host.manager
        chat(server.url, "coder-fast")
        engines = engines_below(os.getpid())
        assert engines
        assert main(["unload", "coder", "--url", server.url]) == 0
        assert capsys.readouterr().out.startswith("unloaded coder; GPU memory freed: unknown")
        assert not wait_gone(engines, 15)  # its processes are gone ...
        assert manager.route_state("coder") is ModelState.STOPPED  # ... and the model is stopped
        chat(server.url, "coder-fast")  # a later request loads it again
        engines = engines_below(os.getpid())
        answer = httpx.post(f"{server.url}/admin/unload", json={"routes": []}, timeout=BOUND)
        assert answer.status_code == 200
        assert answer.json() == {
            "status": "unloaded",
            "unloaded": ["coder"],
            "freed_bytes": None,  # no NVML here
            "freed_reason": "no GPU in tests",
        }
        assert not wait_gone(engines, 15)
        assert manager.route_state("coder") is ModelState.STOPPED
        chat(server.url, "coder-fast")
        stats = manager.snapshot()[0]
        assert stats["loads"] == 3 and stats["evictions"] == 2 and stats["last_error"] is None
    assert not wait_gone(psutil.Process(pid) for pid in engine_processes())


def test_sigterm_with_a_stream_in_flight_leaves_no_engine(tiny_models: Any, tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text(two_routes(tiny_models, "drain_timeout_seconds = 20"))
    with HostProcess(config) as host:
        host.ready()
        chat(host.url, "coder-fast")  # engine up
        children = psutil.Process(host.proc.pid).children(recursive=True)
        assert children
        body = {
            "model": "coder-fast",
            "prompt": "Once",
            "max_tokens": 400,
            "ignore_eos": True,
            "stream": True,
        }
        with httpx.stream("POST", f"{host.url}/v1/completions", json=body, timeout=120) as stream:
            lines = stream.iter_lines()
            next(lines)
            host.proc.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        # The stream either finished normally or ended with an error event: never cut silently.
        assert rest and rest[-1] == "data: [DONE]"
        assert host.proc.wait(timeout=90) == 0
    assert not wait_gone(children, 15)


def test_sigkill_of_the_host_leaves_no_engine_behind(tiny_models: Any, tmp_path: Path) -> None:
    """vLLM's engine core does not notice its in-process host dying; our watchdog does."""
    config = tmp_path / "models.toml"
    config.write_text(two_routes(tiny_models, ""))
    with HostProcess(config) as host:
        host.ready()
        chat(host.url, "coder-fast")
        engines = host.engines()
        assert engines
    assert not wait_gone(engines, 10)  # host killed on leaving the block: its watchdog kills them


def test_sigkill_during_a_load_leaves_no_engine_behind(tiny_models: Any, tmp_path: Path) -> None:
    """The watchdog knows an engine's processes from the moment they exist, not only
    once the load finished: a host killed mid-load must not leave them holding memory."""
    config = tmp_path / "models.toml"
    config.write_text(two_routes(tiny_models, ""))
    with HostProcess(config, DEBUG) as host, ThreadPoolExecutor(1) as pool:
        host.ready()
        pool.submit(_chat_quietly, host.url, "coder-fast")
        engines = _first_engines(host)
        state = httpx.get(f"{host.url}/stats").json()["models"][0]["state"]
        assert state == "loading"  # the engine process exists, the load is not done
        host.close()  # SIGKILL
    assert not wait_gone(engines, 10)


def _first_engines(host: HostProcess) -> list[psutil.Process]:
    """The engine's processes, once its start created them: those the backend's debug line
    names as it hands them to the watchdog (the host runs with LLMHOST_LOG_LEVEL=debug)."""
    line = host.wait_for("engine process(es)", BOUND)
    found = re.search(r"engine process\(es\) \[([\d, ]+)\]", line)
    assert found, line
    engines = [psutil.Process(int(pid)) for pid in found.group(1).split(",")]
    assert engines and all(p.ppid() == host.proc.pid for p in engines)  # the host's own children
    return engines


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
    processes are gone, and the host exits 0 instead of sitting the load out."""
    config = tmp_path / "models.toml"
    config.write_text(two_routes(tiny_models, ""))
    with HostProcess(config, DEBUG) as host, ThreadPoolExecutor(1) as pool:
        host.ready()
        reply = pool.submit(
            httpx.post,
            f"{host.url}/v1/chat/completions",
            json={"model": "coder-fast", "messages": [{"role": "user", "content": "hi"}]},
            timeout=120,
        )
        engines = _first_engines(host)
        host.proc.send_signal(signal.SIGTERM)
        assert host.proc.wait(timeout=60) == 0
        response = reply.result(timeout=10)
        assert response.status_code == 503
        assert response.json()["error"]["message"]
        assert any("abandoning the load of coder-fast" in line for line in host.lines)
    assert not wait_gone(engines, 5)


def test_missing_model_path_evicts_nothing_and_says_why(tiny_models: Any, tmp_path: Path) -> None:
    """A route whose local path does not exist: `check` refuses the file, and a running
    host answers 503 naming the path without unloading the model that was serving."""
    import subprocess
    import sys

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
    with HostProcess(config) as host:
        host.ready()
        chat(host.url, "coder-fast")
        response = httpx.post(
            f"{host.url}/v1/chat/completions",
            json={"model": "broken-model", "messages": [{"role": "user", "content": "hi"}]},
            timeout=60,
        )
        assert response.status_code == 503
        message = response.json()["error"]["message"]
        assert f"the model path {missing} does not exist" in message and ".." not in message
        models = _stats(host.url)
        assert models["coder"]["state"] == "ready" and models["coder"]["evictions"] == 0
        assert models["broken"]["state"] == "failed"
        host.proc.send_signal(signal.SIGTERM)
        host.proc.wait(timeout=60)

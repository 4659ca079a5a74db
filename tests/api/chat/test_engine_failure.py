"""A real tiny engine whose EngineCore process dies under requests: each request on it ends
cleanly, and the client's kept-alive connection stays usable.

The stream gets an error event that names the failure, then `[DONE]`; a request waiting
for its whole answer gets a 503 in the OpenAI envelope (code `engine_failed`), not a 500
"Internal error" logged as unexpected. Both go over one kept-alive connection with the next
request (http.client, which never reconnects on its own: a dropped connection is an error
here, not a silent retry).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from llmhost.config import parse_catalog
from llmhost.lifecycle.state import ModelState
from tests.apphelp import ServerThread, envelope, make_app, running_requests, tiny_llm_route, until

pytestmark = pytest.mark.engine

CHAT = "/v1/chat/completions"
SHORT = {"model": "coder-fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
# Far longer than the test needs: the engine is killed while it writes this.
LONG = {**SHORT, "max_tokens": 20000, "ignore_eos": True}


@pytest.fixture(scope="module")
def server(tiny_models: Any) -> Iterator[ServerThread]:
    """One host for the module; each test loads the engine again after the last one's kill."""
    catalog = parse_catalog(tiny_llm_route("coder", tiny_models.llm, "coder-fast"))
    with ServerThread(make_app(catalog)) as server:
        yield server


def serving_engine(server: ServerThread) -> Any:
    """The route's backend once it answers: an earlier kill's dead engine is unloaded first
    (its state watched pass by pass), then a request loads it again or the replacement
    serves it."""
    manager = server.app.state.host.manager

    def can_serve() -> bool:
        state = manager.route_state("coder")
        if state is ModelState.STOPPED:
            return True
        backend = manager.slots["coder"].backend
        return state is ModelState.READY and backend is not None and backend.failure() is None

    server.run_soon(until(manager, can_serve)).result(300)  # the bound only turns a hang into a failure
    response = httpx.post(f"{server.url}{CHAT}", json=SHORT, timeout=300)
    assert response.status_code == 200, response.text
    return manager.slots["coder"].backend


def kill_engine_core() -> None:
    """SIGKILL the vLLM engine core process below this test process (tests/lifecycle's way
    of finding engines: vLLM names it VLLM::EngineCore)."""
    cores = [p for p in psutil.Process().children(recursive=True) if _is_engine_core(p)]
    assert len(cores) == 1, cores
    os.kill(cores[0].pid, signal.SIGKILL)


def _is_engine_core(process: psutil.Process) -> bool:
    try:
        return "VLLM::EngineCore" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def post(connection: http.client.HTTPConnection, body: dict[str, Any]) -> http.client.HTTPResponse:
    connection.request("POST", CHAT, body=json.dumps(body), headers={"Content-Type": "application/json"})
    return connection.getresponse()


def assert_names_the_failure(error: dict[str, Any]) -> None:
    assert error["code"] == "engine_failed" and error["type"] == "server_error"
    assert "coder-fast" in error["message"] and "died" in error["message"], error


def assert_still_usable(connection: http.client.HTTPConnection) -> None:
    """The next request goes over the same TCP connection and gets an answer: served by
    the replacement engine, or a 503 envelope while the dead one is replaced."""
    assert connection.sock is not None, "the server asked to close the connection"
    local = connection.sock.getsockname()
    response = post(connection, SHORT)  # raises on a dropped connection
    body = json.loads(response.read())
    assert connection.sock is not None and connection.sock.getsockname() == local
    if response.status != 200:
        assert response.status == 503, body
        envelope(body)


def test_a_stream_whose_engine_dies_ends_with_an_error_event(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    serving_engine(server)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    response = post(connection, {**LONG, "stream": True})
    assert response.status == 200
    assert response.readline().startswith(b"data: {")  # the engine is writing
    kill_engine_core()
    lines = [line.strip().decode() for line in iter(response.readline, b"")]
    events = [line for line in lines if line]
    assert events[-1] == "data: [DONE]"
    error = envelope(json.loads(events[-2].removeprefix("data: ")))
    if error["code"] == "stream_interrupted":  # the host unloaded the dead engine first
        assert "coder-fast" in error["message"] and "died" in error["message"], error
    else:
        assert_names_the_failure(error)
    assert_still_usable(connection)
    connection.close()
    assert not [r for r in caplog.records if r.name == "llmhost.errors"]  # nothing unexpected


def test_a_request_whose_engine_dies_is_a_503_naming_the_failure(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    backend = serving_engine(server)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    connection.request("POST", CHAT, body=json.dumps(LONG), headers={"Content-Type": "application/json"})
    # Polled: neither vLLM nor the host has an event for a request reaching the engine (the
    # host's last step, the lease, comes before vLLM's rendering and add_request).
    deadline = time.monotonic() + 60
    while running_requests(backend) == 0:  # in the engine: now it dies under the request
        assert time.monotonic() < deadline
        time.sleep(0.05)
    kill_engine_core()
    response = connection.getresponse()
    assert response.status == 503
    assert response.getheader("Retry-After")
    assert_names_the_failure(envelope(json.loads(response.read())))
    assert_still_usable(connection)
    connection.close()
    assert not [r for r in caplog.records if r.name == "llmhost.errors"]  # nothing unexpected

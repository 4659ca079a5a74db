"""Warm standby against real tiny vLLM engines on CPU.

vLLM has no sleep mode on CPU (its platform says so), so here a route asking for standby
swaps by shutdown, with the reason in the log and /stats. vLLM's sleep and wake calls
still run on a CPU engine (the worker skips the memory part; the scheduler pauses and
resumes, a level-2 wake rereads the weights from disk), which tests the probe and the
order of the wake steps; the memory they free is proven on a GPU (docs/standby.md).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from llmhost.backends.vllm.backend import VllmBackend, sleep_mode_problem
from llmhost.config import HostConfig, parse_catalog
from tests.apphelp import ServerThread, make_app, tiny_llm_route

pytestmark = pytest.mark.engine


def _route(tiny_models: Any, name: str = "coder", served: str = "coder-fast") -> str:
    return tiny_llm_route(name, tiny_models.llm, served, extra='standby = "sleep"')


def test_cpu_has_no_sleep_mode() -> None:
    problem = sleep_mode_problem()
    assert problem is not None and "cpu" in problem.lower()


async def test_the_probe_repeats_and_survives_sleep_and_wake_calls(tiny_models: Any) -> None:
    route = parse_catalog(_route(tiny_models)).routes["coder"]
    backend = VllmBackend(route, HostConfig())
    await backend.start()
    try:
        # Standby was asked for, but this platform has none: no enable_sleep_mode was
        # passed (vLLM would have refused to start) and the backend says why.
        assert "cpu" in (backend.standby_problem() or "").lower()
        recorded = await backend.probe()
        assert len(recorded.token_ids) == 8 and recorded.text
        assert (await backend.probe()) == recorded  # greedy and fixed: the same every time
        for level in (1, 2):
            await backend.sleep(level)
            assert await backend.engine.is_sleeping()
            await backend.wake(level)  # level 2: weights, reload_weights, KV cache, prefix reset
            assert not await backend.engine.is_sleeping()
            assert (await backend.probe()) == recorded
    finally:
        await backend.stop()


def test_a_standby_route_swaps_by_shutdown_on_cpu_and_says_why(
    tiny_models: Any, caplog: pytest.LogCaptureFixture
) -> None:
    text = (
        '[host]\npolicy = "exclusive"\n' + _route(tiny_models) + _route(tiny_models, "chat", "chat-general")
    )
    caplog.set_level(logging.INFO, logger="llmhost")
    with ServerThread(make_app(parse_catalog(text))) as server:
        for model in ("coder-fast", "chat-general"):
            response = httpx.post(
                f"{server.url}/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                timeout=300,
            )
            assert response.status_code == 200, response.text
        stats = {m["route"]: m for m in httpx.get(f"{server.url}/stats").json()["models"]}
    coder = stats["coder"]
    assert coder["state"] == "stopped" and coder["sleeps"] == 0 and coder["evictions"] == 1
    assert coder["standby"] == "unavailable" and "cpu" in coder["standby_reason"].lower()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # One warning, at start-up: not one more per load.
    assert [w for w in warnings if "standby" in w or "sleep" in w] == [
        next(w for w in warnings if w.startswith("standby requested for coder, chat but unavailable"))
    ], warnings
    assert not any("putting" in r.getMessage() for r in caplog.records)  # nothing was put to sleep

"""Engines that fit themselves: vLLM's refusal of a max_model_len, read and retried once.

The last test runs the whole path through a real tiny engine on CPU: vLLM's CPU build
produces the refusal itself when the KV cache (`kv_cache_memory_bytes`) is smaller than
one request of max_model_len, so nothing is injected there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmhost.backends.vllm.context_fit import (
    Refusal,
    create_fitted,
    fitted_length,
    parse_refusal,
)
from llmhost.config import parse_catalog
from llmhost.config.text import toml_table
from llmhost.tiny_models import tiny_engine_args
from tests.apphelp import ServerThread, make_app
from tests.backends.vllm.support import coder_route

# vLLM 0.32's refusal, as its CPU build wrote it for the tiny model with a 4 MiB KV cache.
REFUSAL = (
    "ValueError: To serve at least one request with the model's max seq len (32768), (0.02 GiB KV "
    "cache is needed, which is larger than the available KV cache memory (0.0 GiB). Based on the "
    "available memory, the estimated maximum model length is 8064. Try increasing "
    "`gpu_memory_utilization` (which also controls CPU memory on the CPU backend) or decreasing "
    "`max_model_len` when initializing the engine."
)


def test_the_refusal_is_read_with_vllms_estimate() -> None:
    assert parse_refusal(REFUSAL) == Refusal(32768, 0.02, 0.0, 8064)
    without = REFUSAL.replace(
        "Based on the available memory, the estimated maximum model length is 8064. ", ""
    )
    assert parse_refusal(without) == Refusal(32768, 0.02, 0.0, None)
    assert parse_refusal("ValueError: Free memory on device cuda:0 (13.71/15.99 GiB) ...") is None


@pytest.mark.parametrize(
    ("estimate", "configured", "expected"),
    [
        (8064, 32768, 7888),  # 2% less, whole 16-token blocks
        (19056, None, 18672),  # no [engine] value: capped at the refused (vLLM's default)
        (20000, 16384, 16384),  # never above the configured value
        (12, 32768, None),  # nothing worth serving
        (None, 32768, None),  # vLLM could not tell
    ],
)
def test_the_retry_asks_for_vllms_estimate_less_the_slack_capped(
    estimate: int | None, configured: int | None, expected: int | None
) -> None:
    refused = 32768 if configured is None else max(configured, 32768)
    assert fitted_length(Refusal(refused, 1.75, 1.0, estimate), configured) == expected


class _Engine:
    def __init__(self, max_model_len: int) -> None:
        self.model_config = type("ModelConfig", (), {"max_model_len": max_model_len})()


def _refusing(log: Path, refuse: int | None = 1) -> tuple[list[dict[str, Any]], Any]:
    """A `create` that refuses the first `refuse` starts as vLLM does (its error in the
    engine's log, "see root cause above" raised), then starts with the asked length."""
    calls: list[dict[str, Any]] = []

    def create(engine: dict[str, Any]) -> _Engine:
        calls.append(engine)
        if refuse is None or len(calls) <= refuse:
            log.write_text("EngineCore failed to start.\n" + REFUSAL + "\n")
            raise RuntimeError("Engine core initialization failed. See root cause above.")
        return _Engine(int(engine["max_model_len"]))

    return calls, create


def test_a_refused_context_is_started_again_once_fitted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "coder.log"
    calls, create = _refusing(log)
    caplog.set_level(logging.WARNING, logger="llmhost.vllm")
    engine, context = create_fitted(
        create,
        {"max_model_len": 32768},
        coder_route(),
        failure_log=log,
        procs=None,
        abandoned=lambda: False,
    )
    assert [c["max_model_len"] for c in calls] == [32768, 7888]
    assert engine.model_config.max_model_len == 7888
    assert (context.max_model_len, context.configured, context.fitted_from) == (7888, 32768, 32768)
    assert context.reason.startswith("fitted down from 32768: vLLM refused 32768 tokens")
    assert "it estimated 8064 tokens fit" in context.reason
    assert not log.exists()  # the refusal is not the retry's root cause
    said = [r.getMessage() for r in caplog.records]
    assert any("starting again with max_model_len 7888" in m for m in said), said
    assert any("serves max_model_len 7888 instead of 32768" in m for m in said), said


def test_only_once_and_never_for_another_failure_or_an_abandoned_load(tmp_path: Path) -> None:
    log = tmp_path / "coder.log"
    calls, create = _refusing(log, refuse=None)  # refuses the retry too
    with pytest.raises(RuntimeError):
        create_fitted(
            create,
            {"max_model_len": 32768},
            coder_route(),
            failure_log=log,
            procs=None,
            abandoned=lambda: False,
        )
    assert len(calls) == 2
    calls, create = _refusing(log)
    with pytest.raises(RuntimeError):
        create_fitted(
            create,
            {"max_model_len": 32768},
            coder_route(),
            failure_log=log,
            procs=None,
            abandoned=lambda: True,
        )
    assert len(calls) == 1

    def other(engine: dict[str, Any]) -> None:
        log.write_text("ValueError: Free memory on device cuda:0 (13.71/15.99 GiB) on startup is less\n")
        raise RuntimeError("Engine core initialization failed. See root cause above.")

    with pytest.raises(RuntimeError):
        create_fitted(
            other,
            {"max_model_len": 32768},
            coder_route(),
            failure_log=log,
            procs=None,
            abandoned=lambda: False,
        )


@pytest.mark.engine
def test_a_real_engine_refused_for_its_context_serves_fitted(
    tiny_models: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # 4 MiB of KV cache holds about 8k tokens of the tiny model (512 bytes each): its
    # configured 32k context is refused by vLLM itself, and the route still serves.
    engine = {**tiny_engine_args(), "kv_cache_memory_bytes": 4 * 1024 * 1024}
    assert engine["max_model_len"] == 32768
    route = {"kind": "llm", "model": str(tiny_models.llm), "served_names": ["coder-fast"], "engine": engine}
    text = "\n".join(toml_table("routes.coder", route)) + "\n"
    caplog.set_level(logging.INFO, logger="llmhost")
    with ServerThread(make_app(parse_catalog(text))) as server:
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "coder-fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
            timeout=300,
        )
        assert response.status_code == 200, response.text
        stats = {m["route"]: m for m in httpx.get(f"{server.url}/stats").json()["models"]}["coder"]
        cards = {m["id"]: m for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
    served = stats["max_model_len"]
    assert 1000 < served < 32768 and stats["max_model_len_fitted_from"] == 32768
    assert stats["max_model_len_reason"].startswith("fitted down from 32768: vLLM refused 32768 tokens")
    assert cards["coder-fast"]["max_model_len"] == served
    assert cards["coder-fast"]["max_model_len_reason"] == stats["max_model_len_reason"]
    said = [r.getMessage() for r in caplog.records]
    assert any(f"starting again with max_model_len {served}" in m for m in said), said

"""What an engine's start said about it (llmhost.backends.vllm.start_report): the `/stats`
keys of a start, and the context the model list shows for a route."""

from __future__ import annotations

from llmhost.backends.base import NO_START_STATS
from llmhost.backends.vllm.context_fit import EngineContext
from llmhost.backends.vllm.start_phases import Phase
from llmhost.backends.vllm.start_report import EngineStart, served_context
from tests.backends.vllm.support import coder_route


def test_the_model_list_shows_the_context_served_and_why() -> None:
    route = coder_route(max_model_len="32k")  # vLLM's CLI size: 32,000 tokens
    assert served_context(route, None) == {
        "max_model_len": 32000,
        "max_model_len_reason": "max_model_len in [engine]",
    }
    fitted = EngineStart(EngineContext(7888, 32000, "fitted down from 32000: ...", 32000))
    assert served_context(route, fitted)["max_model_len"] == 7888
    # models.toml changed since: the last engine no longer tells what the next one gets.
    assert served_context(coder_route(max_model_len=8192), fitted)["max_model_len"] == 8192
    assert served_context(coder_route(), None)["max_model_len"] is None


def test_a_start_reports_the_keys_a_model_without_one_shows() -> None:
    assert EngineStart().stats() == NO_START_STATS  # nothing known: every key, each None
    start = EngineStart(
        EngineContext(7888, 32000, "fitted down from 32000", 32000),
        (Phase("weights", seconds=1.5, gib=0.9), Phase("graphs", detail="eager")),
    )
    assert start.stats() == {
        "cold_start_phases": [
            {"phase": "weights", "seconds": 1.5, "gib": 0.9, "detail": None},
            {"phase": "graphs", "seconds": None, "gib": None, "detail": "eager"},
        ],
        "max_model_len": 7888,
        "max_model_len_reason": "fitted down from 32000",
        "max_model_len_fitted_from": 32000,
    }
    # An engine that started at the configured length, without fitting: the model list shows it.
    served = EngineStart(EngineContext(4096, 4096, "max_model_len in [engine]"))
    assert served_context(coder_route(max_model_len=4096), served) == {
        "max_model_len": 4096,
        "max_model_len_reason": "max_model_len in [engine]",
    }

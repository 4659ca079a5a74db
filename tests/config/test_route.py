"""[routes.NAME] (llmhost.config.route): engine and serving values checked against vLLM's
own definitions (read from its source), sizes as `vllm serve` reads them, resident routes."""

from __future__ import annotations

import pytest

from llmhost.config import ConfigError, parse_catalog
from tests.config.support import GOOD, engine, pipeline, serving
from tests.vllm_source.support import needs_vllm


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(*case, marks=needs_vllm, id=case[1][:40])
        for case in [
            (engine('quantization = "bitsandbytes"'), "vLLM 0.32 removed it"),
            (
                engine('quantization = "bitsandbytes"'),
                "a pre-quantized AWQ or GPTQ checkpoint as the route's model",
            ),
            (engine('quantization = "awk"'), 'quantization = "awk" is not a quantization method'),
            (engine('quantization = "fbgemm_fp8"'), "set allow_deprecated_quantization = true"),
            (engine('max_model_len = "big"'), '[routes.coder.engine] max_model_len = "big": vLLM'),
            (engine("max_model_len = 8192.5"), "max_model_len = 8192.5: vLLM"),
            (engine("max_model_len = true"), "max_model_len = true: vLLM"),
            (engine('max_model_len = "1.5K"'), "expects an integer"),
            (
                engine("gpu_memory_utilization = 0"),
                "gpu_memory_utilization = 0: vLLM 0.32.0 requires > 0 and ≤ 1",
            ),
            (engine("gpu_memory_utilization = 1.5"), "requires > 0 and ≤ 1"),
            (engine('gpu_memory_utilization = "0.9"'), "expects a number"),
            (
                engine('dtype = "fp16"'),
                'dtype = "fp16": vLLM 0.32.0 expects one of "auto", "half", "float16"',
            ),
            (engine('kv_cache_dtype = "fp9"'), 'kv_cache_dtype = "fp9": vLLM 0.32.0 expects one of "auto"'),
            (engine('enforce_eager = "yes"'), 'enforce_eager = "yes": vLLM 0.32.0 expects true or false'),
            (engine("trust_remote_code = 1"), "trust_remote_code = 1: vLLM 0.32.0 expects true or false"),
            (engine("seed = 1.5"), "seed = 1.5: vLLM 0.32.0 expects an integer"),
            (engine("max_lora_rank = 7"), "max_lora_rank = 7: vLLM 0.32.0 expects one of 1, 8, 16"),
            (engine('reasoning_parser = "nosuch"'), 'reasoning_parser = "nosuch" is not a reasoning parser'),
            (engine('tool_call_parser = "hermes"'), "tool_call_parser: unknown key"),
            (engine('tool_call_parser = "hermes"'), "it belongs in [serving] as tool_parser"),
            (engine('served_model_name = "x"'), "served_model_name: not set here"),
            (
                serving('tool_parser = "nosuch"'),
                '[routes.coder.serving] tool_parser: "nosuch" is not a tool parser',
            ),
            (serving('tool_parser = "hermse"'), 'did you mean "hermes"?'),
            (
                serving('reasoning_parser = "nosuchparser"'),
                '"nosuchparser" is not a reasoning parser of vLLM',
            ),
        ]
    ],
)
def test_engine_values_are_checked_against_vllm(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(text, "my-models.toml")
    message = str(caught.value)
    assert message.startswith("my-models.toml: [routes.coder")
    assert expected in message
    assert "\n" not in message.strip()


@needs_vllm
def test_every_problem_of_a_route_is_reported_at_once() -> None:
    text = engine('quantization = "bitsandbytes"\nmax_model_len = "big"\nmax_modle_len = 3') + (
        "[routes.coder.serving]\ntool_parser = 'nosuch'\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_catalog(text)
    message = str(caught.value)
    for fragment in ("max_modle_len: unknown key", 'max_model_len = "big"', "bitsandbytes", '"nosuch"'):
        assert fragment in message


@needs_vllm
@pytest.mark.parametrize(
    ("value", "expected"),
    [("8192", 8192), ('"32k"', 32_000), ('"32K"', 32_768), ('"25.6k"', 25_600), ('"auto"', -1), ("-1", -1)],
)
def test_max_model_len_takes_sizes_as_vllm_serve_does(value: str, expected: int) -> None:
    # vLLM's command line reads "32k" (utils/argparse_utils.py: human_readable_int_or_auto);
    # AsyncEngineArgs itself takes only integers, so the host passes the number on.
    route = parse_catalog(engine(f"max_model_len = {value}")).routes["coder"]
    assert route.engine["max_model_len"] == expected
    assert type(route.engine["max_model_len"]) is int


@needs_vllm
def test_good_values_pass() -> None:
    text = (
        engine(
            'quantization = "AWQ"\ndtype = "half"\nkv_cache_dtype = "fp8"\ngpu_memory_utilization = 1\n'
            'enforce_eager = true\nkv_cache_memory_bytes = "64M"\nhf_overrides = { rope_theta = 1e6 }\n'
            "max_lora_rank = 16\nmax_model_len = 4096"
        )
        + "[routes.coder.serving]\ntool_parser = 'hermes'\nreasoning_parser = 'deepseek_r1'\n"
    )
    route = parse_catalog(text).routes["coder"]
    assert route.engine["quantization"] == "AWQ"  # vLLM lower-cases it itself
    assert route.engine["kv_cache_memory_bytes"] == 64 * 2**20
    assert route.engine["hf_overrides"] == {"rope_theta": 1e6}  # a complex type: passed on unchecked
    assert route.serving.tool_parser == "hermes" and route.serving.reasoning_parser == "deepseek_r1"
    assert parse_catalog(pipeline("max_edge = 512")).routes["vision"].pipeline.max_edge == 512


# ---- resident routes ---------------------------------------------------------------------

RESIDENT = (
    GOOD
    + """
[routes.embed]
kind = "embedding"
model = "Qwen/Qwen3-Embedding-0.6B"
resident = true
"""
)


def test_a_resident_route_ignores_the_host_idle_time_unless_it_sets_its_own() -> None:
    catalog = parse_catalog("[host]\nidle_seconds = 60\n" + RESIDENT)
    embed, coder = catalog.routes["embed"], catalog.routes["coder"]
    assert embed.resident and not coder.resident
    assert embed.idle_unload_seconds(catalog.host) is None  # never unloaded for idle time
    assert coder.idle_unload_seconds(catalog.host) == 60
    own = parse_catalog(RESIDENT + "idle_seconds = 900\n").routes["embed"]
    assert own.idle_unload_seconds(catalog.host) == 900


def test_a_resident_route_with_standby_is_refused_with_why() -> None:
    text = RESIDENT.replace(
        'kind = "embedding"\nmodel = "Qwen/Qwen3-Embedding-0.6B"', 'kind = "llm"\nmodel = "org/m"'
    )
    parse_catalog(text)  # an llm route may be resident
    with pytest.raises(ConfigError) as caught:
        parse_catalog(text + 'standby = "sleep"\n')
    assert "never evicted to make room, and that is the only time an engine sleeps" in str(caught.value)
    with pytest.raises(ConfigError, match="resident"):
        parse_catalog(RESIDENT.replace("resident = true", 'resident = "yes please"'))

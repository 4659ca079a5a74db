"""models.toml: the shipped file validates, and each kind of mistake gets a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from llmhost import vllm_source
from llmhost.config import ConfigError, load_catalog, parse_catalog
from llmhost.vllm_source import engine as engine_fields
from llmhost.vllm_source import field_types, parsers, quantization, source

REPO = Path(__file__).resolve().parents[2]

GOOD = """
[routes.coder]
kind = "llm"
model = "Qwen/Qwen2.5-Coder-7B-Instruct"
served_names = ["coder-fast"]
[routes.coder.engine]
max_model_len = 8192
"""


def test_shipped_models_toml_has_the_six_routes() -> None:
    catalog = load_catalog(REPO / "models.toml")
    assert list(catalog.routes) == ["coder", "chat", "general", "coderslow", "agent", "vision"]
    assert catalog.find("coder-fast") is catalog.routes["coder"]
    assert catalog.find("vision-diffusion") is catalog.routes["vision"]
    assert catalog.routes["vision"].auth_mode == "none"
    assert catalog.routes["coder"].auth_mode == "key"
    assert catalog.routes["general"].serving.reasoning_parser == "deepseek_r1"
    assert catalog.routes["agent"].serving.auto_tools
    coder_ids = " ".join(catalog.routes["coder"].model_ids)
    assert "qwen" in coder_ids and "coder" in coder_ids  # Continue's FIM template detection


def test_route_name_is_also_a_model_id() -> None:
    catalog = parse_catalog(GOOD)
    assert catalog.find("coder") is catalog.routes["coder"]
    assert catalog.find("nope") is None


def test_catalog_is_frozen() -> None:
    catalog = parse_catalog(GOOD)
    with pytest.raises(ValidationError, match="frozen"):
        catalog.routes["coder"].model = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[routes.coder\nkind = 'llm'", "not valid TOML"),
        (
            GOOD.replace("served_names", "colour = 'blue'\nserved_names"),
            "[routes.coder] colour: unknown key 'colour'",
        ),
        (
            GOOD.replace("max_model_len", "max_modle_len"),
            "[routes.coder.engine] max_modle_len: unknown key (vLLM's AsyncEngineArgs has no such field); "
            "did you mean `max_model_len`?",
        ),
        (
            GOOD + "[routes.chat]\nkind='llm'\nmodel='x'\nserved_names=['coder-fast']\n",
            "'coder-fast' is used by both routes 'coder' and 'chat'",
        ),
        ("[routes.openai]\nkind='llm'\nmodel='x'\n", "'openai' is a path the host serves itself"),
        ("[routes.healthz]\nkind='llm'\nmodel='x'\n", "'healthz' is a path"),
        (GOOD.replace('kind = "llm"', 'kind = "audio"'), "[routes.coder"),
        ("[host]\npolicy = 'greedy'\n" + GOOD, "[host] policy"),
        ("[host]\nidle_seconds = -5\n" + GOOD, "[host] idle_seconds"),
        ("[host]\nprewarm = ['chat']\n" + GOOD, "prewarm names route 'chat'"),
        ("[host]\n", "no routes defined"),
        (GOOD + "[routes.coder.serving]\ntool_parsr = 'hermes'\n", "[routes.coder.serving]"),
        ("[routes.Bad_Name]\nkind='llm'\nmodel='x'\n", "lowercase"),
    ],
)
def test_bad_files_get_one_clear_message(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(text, "my-models.toml")
    message = str(caught.value)
    assert message.startswith("my-models.toml: ")
    assert expected in message
    assert "Traceback" not in message and "\n" not in message.strip()


def test_toml_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"line 3"):
        parse_catalog("[host]\nidle_seconds = 5\npolicy = \n")


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_catalog(Path("/nonexistent/models.toml"))


# ---- values checked against vLLM's own definitions (read from its source) ------------------

needs_vllm = pytest.mark.skipif(vllm_source.known() is None, reason="vLLM is not installed")


def engine(body: str) -> str:
    return GOOD.replace("max_model_len = 8192\n", body + "\n")


def serving(body: str) -> str:
    return GOOD + "[routes.coder.serving]\n" + body + "\n"


def pipeline(body: str) -> str:
    return "[routes.vision]\nkind = 'diffusion'\nmodel = 'org/sd'\n[routes.vision.pipeline]\n" + body + "\n"


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (pipeline("max_edge = 500"), "[routes.vision.pipeline] max_edge: must be a multiple of 16"),
        (pipeline("max_edge = 500"), "use 496 or 512"),
        (pipeline("max_edg = 512"), "unknown key 'max_edg'; did you mean `max_edge`?"),
        (
            GOOD.replace('served_names = ["coder-fast"]', 'served_names = "x"'),
            "served_names: must be a list of strings",
        ),
        (GOOD.replace('model = "Qwen/Qwen2.5-Coder-7B-Instruct"', "model = 5"), "model: must be a string"),
        (
            "[host]\nidle_secs = 5\n" + GOOD,
            "[host] idle_secs: unknown key 'idle_secs'; did you mean `idle_seconds`?",
        ),
        (
            GOOD.replace("served_names", "idle_secs = 5\nserved_names"),
            "[routes.coder] idle_secs: unknown key 'idle_secs'; did you mean `idle_seconds`?",
        ),
        (serving('tool_parsr = "hermes"'), "unknown key 'tool_parsr'; did you mean `tool_parser`?"),
        (
            "[hosts]\n" + GOOD,
            "unknown top-level table(s) hosts; expected [host], [routes.NAME] and [search]; "
            "did you mean `host`?",
        ),
        (
            GOOD.replace("served_names", "colour = 'blue'\nserved_names"),
            "unknown key 'colour'.",
        ),  # nothing close: no suggestion
    ],
)
def test_messages_say_what_is_wrong_in_toml_terms(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(text, "my-models.toml")
    message = str(caught.value)
    assert expected in message
    assert "valid tuple" not in message and "required" not in message and "?." not in message


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


@needs_vllm
def test_what_is_read_from_vllm_source() -> None:
    methods = vllm_source.quantization_methods()
    assert methods is not None and {"awq", "gptq", "fp8", "compressed-tensors"} <= set(methods)
    assert "bitsandbytes" not in methods
    assert {"hermes", "llama3_json", "mistral", "pythonic"} <= (vllm_source.tool_parsers() or set())
    assert {"deepseek_r1", "qwen3"} <= (vllm_source.reasoning_parsers() or set())


def test_without_vllm_its_checks_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = (source, field_types, engine_fields, quantization, parsers)
    cached = [f for part in parts for f in vars(part).values() if hasattr(f, "cache_clear")]
    for function in cached:
        function.cache_clear()
    monkeypatch.setattr(source, "_root", lambda: None)
    try:
        text = (
            engine('quantization = "bitsandbytes"\nwarp_speed = 9')
            + "[routes.coder.serving]\ntool_parser = 'x'\n"
        )
        route = parse_catalog(text).routes["coder"]
        assert route.engine["quantization"] == "bitsandbytes" and route.serving.tool_parser == "x"
        with pytest.raises(ConfigError, match="multiple of 16"):  # the host's own rules still apply
            parse_catalog(pipeline("max_edge = 500"))
    finally:
        monkeypatch.undo()
        for function in cached:
            function.cache_clear()


def test_checks_do_not_import_vllm() -> None:
    """Importing vLLM takes seconds; check, reload and start-up read its source instead."""
    text = engine('quantization = "awq"\ndtype = "half"') + "[routes.coder.serving]\ntool_parser = 'hermes'\n"
    script = (
        "import sys\n"
        "from llmhost.config import parse_catalog\n"
        f"parse_catalog({text!r})\n"
        "print(sorted(m for m in sys.modules if m == 'vllm' or m.startswith('vllm.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


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

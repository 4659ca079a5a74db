"""models.toml: the shipped file validates, and each kind of mistake gets a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmhost.config import ConfigError, load_catalog, parse_catalog
from tests.config.support import GOOD

REPO = Path(__file__).resolve().parents[2]


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

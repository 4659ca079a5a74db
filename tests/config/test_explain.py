"""Validation errors as one paragraph in models.toml's terms (llmhost.config.explain):
the table and key, what is wrong, and the closest known key where one is close."""

from __future__ import annotations

import pytest

from llmhost.config import ConfigError, parse_catalog
from tests.config.support import GOOD, pipeline, serving


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

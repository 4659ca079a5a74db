"""The models.toml writer (llmhost.config.text): what it writes reads back as what it was
given, both as TOML and as the catalog the host parses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llmhost.config import load_catalog, parse_catalog
from llmhost.config.text import as_toml, models_toml, toml_table, toml_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        0,
        -7,
        8192,
        0.5,
        1e-05,
        1e6,
        float("inf"),
        "",
        "plain",
        'quote " and backslash \\ and\nnewline',
        "ünïcode ✓",
        [],
        ["a", "b"],
        [1, [2, 3]],
        {"rope_theta": 1e6, "rope_scaling": {"type": "yarn", "factor": 4.0}},
        {"odd key": True, "x.y": "dotted"},
    ],
)
def test_a_value_reads_back_as_it_was(value: object) -> None:
    assert tomllib.loads(f"v = {toml_value(value)}") == {"v": value}


def test_a_tuple_is_written_as_an_array() -> None:
    assert tomllib.loads(f"v = {toml_value(('coder', 'chat'))}") == {"v": ["coder", "chat"]}


def test_what_toml_cannot_hold_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot write NoneType to TOML"):
        toml_value(None)
    with pytest.raises(TypeError, match="cannot write set"):
        toml_value({1})


def test_a_table_puts_its_scalars_before_its_sub_tables() -> None:
    lines = toml_table("routes.coder", {"engine": {"max_model_len": 8192}, "kind": "llm", "model": "m"})
    assert lines == [
        "[routes.coder]",
        'kind = "llm"',
        'model = "m"',
        "",
        "[routes.coder.engine]",
        "max_model_len = 8192",
    ]


def test_as_toml_spells_values_for_messages() -> None:
    assert as_toml(True) == "true" and as_toml(False) == "false"
    assert as_toml("fp16") == '"fp16"'
    assert as_toml(8192) == "8192" and as_toml(0.5) == "0.5"
    assert as_toml(None) == "None"  # TOML has no word for it: Python's


def test_a_written_models_toml_reads_back_as_the_tables_it_was_given() -> None:
    host = {"idle_seconds": 60, "policy": "fit", "prewarm": ["coder"]}
    routes = {
        "coder": {
            "kind": "llm",
            "model": "org/coder",
            "served_names": ["coder-fast"],
            "engine": {"max_model_len": 8192, "hf_overrides": {"rope_theta": 1e6}},
            "serving": {"tool_parser": "hermes"},
        },
        "vision": {"kind": "diffusion", "model": "org/sd", "pipeline": {"max_edge": 512}},
    }
    text = models_toml(host, routes, comment="written for a test")
    assert text.startswith("# written for a test\n[host]\n") and text.endswith("\n")
    assert tomllib.loads(text) == {"host": host, "routes": routes}


def test_the_shipped_catalog_written_and_parsed_back_is_equal() -> None:
    shipped = REPO / "models.toml"
    tables = tomllib.loads(shipped.read_text())
    written = models_toml(tables["host"], tables["routes"])
    catalog, again = load_catalog(shipped), parse_catalog(written, str(shipped))
    assert again.host == catalog.host
    assert again.routes == catalog.routes

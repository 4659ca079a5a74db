"""The shipped Continue configs, read by Continue's own config package.

`@continuedev/config-yaml` (npm) is the package Continue's extension and CLI load
config.yaml with. The test installs it into a cache directory and runs its parser,
validator, secret templating and JSON-to-YAML converter on clients/continue/. Skipped,
with the reason, where npm is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]
CONTINUE = REPO / "clients" / "continue"
PACKAGE = "@continuedev/config-yaml@1.42.0"
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmhost-tests" / "config-yaml-1.42.0"
)
KEY = "test-key-from-dotenv"

# Runs in node: Continue's own functions on the shipped files; prints what they made of them.
SCRIPT = """
import fs from "node:fs";
import * as cy from "@continuedev/config-yaml";
const [yamlPath, jsonPath, key] = process.argv.slice(2);
const text = fs.readFileSync(yamlPath, "utf8");
const variables = cy.getTemplateVariables(text);
const filled = cy.fillTemplateVariables(text, { "secrets.VLLM_API_KEY": key });
const config = cy.parseConfigYaml(filled);
const problems = cy.validateConfigYaml(config);
const legacy = JSON.parse(fs.readFileSync(jsonPath, "utf8"));
const converted = cy.convertJsonToYamlConfig(legacy);
const convertedCheck = cy.configYamlSchema.safeParse(converted);
console.log(JSON.stringify({
  variables, config, problems, legacy: converted,
  legacyErrors: convertedCheck.success ? [] : convertedCheck.error.issues,
}));
"""


@pytest.fixture(scope="module")
def package() -> Path:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("npm/node not installed: cannot install Continue's @continuedev/config-yaml")
    if not (CACHE / "node_modules" / "@continuedev" / "config-yaml").is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), PACKAGE],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return CACHE


@pytest.fixture(scope="module")
def continue_view(package: Path) -> dict[str, Any]:
    script = package / "check-config.mjs"  # inside the cache, so node resolves the package
    script.write_text(SCRIPT)
    result = subprocess.run(
        ["node", str(script), str(CONTINUE / "config.yaml"), str(CONTINUE / "config.json"), KEY],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    view: dict[str, Any] = json.loads(result.stdout)
    return view


def test_yaml_is_valid_for_continue(continue_view: dict[str, Any]) -> None:
    assert continue_view["problems"] == [], continue_view["problems"]
    assert continue_view["config"]["schema"] == "v1"


def test_key_is_continues_secret_and_nothing_else(continue_view: dict[str, Any]) -> None:
    assert continue_view["variables"] == ["secrets.VLLM_API_KEY"]
    models = continue_view["config"]["models"]
    assert models and all(m["apiKey"] == KEY for m in models)
    assert "change-me" not in (CONTINUE / "config.yaml").read_text()


def test_models_are_llmhost_served_names(continue_view: dict[str, Any]) -> None:
    routes = tomllib.loads((REPO / "models.toml").read_text())["routes"]
    served = {name for route in routes.values() for name in route.get("served_names", [])}
    models = continue_view["config"]["models"]
    for model in models:
        assert model["provider"] == "openai"
        assert model["apiBase"] == "http://localhost:8000/openai/v1"
        assert model["model"] in served, model["model"]
    by_role: dict[str, list[dict[str, Any]]] = {}
    for model in models:
        for role in model["roles"]:
            by_role.setdefault(role, []).append(model)
    # Continue picks its FIM template from "qwen" + "coder" in the id.
    (autocomplete,) = by_role["autocomplete"]
    assert "qwen" in autocomplete["model"] and "coder" in autocomplete["model"]
    # Native tools only where the route parses tool calls.
    with_tools = [m["model"] for m in models if "tool_use" in m.get("capabilities", [])]
    assert with_tools == ["agent-tools"]


def test_legacy_json_converts_with_continues_converter(continue_view: dict[str, Any]) -> None:
    assert continue_view["legacyErrors"] == []
    converted = {(m["model"], tuple(m["roles"])) for m in continue_view["legacy"]["models"]}
    current = {(m["model"], tuple(m["roles"])) for m in continue_view["config"]["models"]}
    # The same models; the JSON format knows chat and autocomplete only (edit/apply follow chat).
    assert {model for model, _ in converted} == {model for model, _ in current}
    assert ("qwen2.5-coder-7b-instruct", ("autocomplete",)) in converted
    legacy = json.loads((CONTINUE / "config.json").read_text())
    assert [m["model"] for m in legacy["models"] if m.get("capabilities", {}).get("tools")] == ["agent-tools"]


def _max_model_len_by_id() -> dict[str, int]:
    """Every id an llm route answers to (its name and served names) -> its max_model_len."""
    routes = tomllib.loads((REPO / "models.toml").read_text())["routes"]
    lengths: dict[str, int] = {}
    for name, route in routes.items():
        if route["kind"] != "llm":
            continue
        length = route.get("engine", {}).get("max_model_len")
        assert isinstance(length, int), f"[routes.{name}.engine] max_model_len: {length!r}"
        for model_id in (name, *route.get("served_names", [])):
            lengths[model_id] = length
    return lengths


def test_context_length_is_the_routes_max_model_len() -> None:
    """A larger contextLength makes Continue send prompts the route refuses; a smaller one
    wastes the context the route was sized for. Read without npm, so it runs everywhere."""
    lengths = _max_model_len_by_id()
    config = yaml.safe_load((CONTINUE / "config.yaml").read_text())
    for model in config["models"]:
        assert model["defaultCompletionOptions"]["contextLength"] == lengths[model["model"]], model["name"]
    legacy = json.loads((CONTINUE / "config.json").read_text())
    for model in [*legacy["models"], legacy["tabAutocompleteModel"]]:
        assert model["contextLength"] == lengths[model["model"]], model["title"]


def test_continue_reads_the_context_lengths(continue_view: dict[str, Any]) -> None:
    """The same through Continue's own parser: the field is where Continue looks for it.
    (Its JSON-to-YAML converter drops the old format's contextLength, so config.json is
    checked by the test above only.)"""
    lengths = _max_model_len_by_id()
    for model in continue_view["config"]["models"]:
        assert model["defaultCompletionOptions"]["contextLength"] == lengths[model["model"]]

"""clients/open-webui/searxng_search.py, the Open WebUI tool, called as Open WebUI calls it.

The tool runs against a real llmhost (uvicorn on loopback) in front of the stand-in
SearXNG of tests/api/test_tools.py; test_searxng_real.py runs it against a real SearXNG.
Open WebUI's own spec converter is used when `OPEN_WEBUI_PYTHON` names a Python with
`open_webui` installed (Open WebUI is not a dependency of llmhost).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from llmhost.gpu.monitor import NullMonitor
from llmhost.server.app import create_app
from llmhost.settings import Settings
from tests.api.test_tools import CATALOG, _SearXNG, _serve, seen
from tests.apphelp import ServerThread
from tests.fakes import Recorder

TOOL = Path(__file__).resolve().parents[2] / "clients" / "open-webui" / "searxng_search.py"


def load_tool() -> ModuleType:
    """The tool file as a module, the way Open WebUI loads it (exec of the file's text)."""
    spec = importlib.util.spec_from_file_location("owui_tool_searxng_search", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def host() -> Iterator[str]:
    server = _serve(_SearXNG)
    searxng_url = next(server)
    settings = Settings(_env_file=None, searxng_url=searxng_url, vllm_api_key="sekrit")
    app = create_app(settings, CATALOG, backend_factory=Recorder().factory, gpu=NullMonitor("test"))
    with ServerThread(app) as running:
        yield running.url
    next(server, None)


def test_the_tool_is_what_open_webui_expects() -> None:
    module = load_tool()
    tools = module.Tools()
    # Open WebUI offers every public callable of the instance as a function to the model.
    public = [name for name in dir(tools) if not name.startswith("_") and callable(getattr(tools, name))]
    assert [n for n in public if not inspect.isclass(getattr(tools, n))] == ["searxng_search"]
    assert set(tools.valves.model_dump()) == {"llmhost_url", "api_key", "max_results", "timeout_seconds"}
    signature = inspect.signature(tools.searxng_search)
    visible = [name for name in signature.parameters if not name.startswith("__")]
    assert visible == ["query", "mode"] and signature.parameters["mode"].default == "auto"
    assert inspect.iscoroutinefunction(tools.searxng_search)
    doc = tools.searxng_search.__doc__ or ""
    assert ":param query:" in doc and ":param mode:" in doc
    assert module.__doc__ and "title:" in module.__doc__  # Open WebUI's frontmatter


async def test_the_chat_model_picks_the_mode(host: str) -> None:
    tools = load_tool().Tools()
    tools.valves = tools.Valves(llmhost_url=host, api_key="sekrit", max_results=2)
    events: list[dict[str, Any]] = []

    async def emit(event: dict[str, Any]) -> None:
        events.append(event)

    # Open WebUI passes the chat's model as __model__; a workspace model names its base model.
    text = await tools.searxng_search(
        "vllm sleep mode",
        __model__={"id": "my-helper", "info": {"base_model_id": "coder-fast"}},
        __event_emitter__=emit,
    )
    assert seen[-1]["engines"] == ["github,stackoverflow,duckduckgo"]
    assert "(mode code)" in text and "https://example.org/0" in text and "https://example.org/2" not in text
    assert [e["data"]["done"] for e in events] == [False, True]
    # Without __model__, the model comes from __metadata__; no model at all: general.
    await tools.searxng_search("x", __metadata__={"model": {"id": "general-reasoner"}})
    assert seen[-1]["engines"] == ["arxiv,semantic scholar,duckduckgo"]
    await tools.searxng_search("x")
    assert seen[-1]["engines"] == ["duckduckgo,brave,wikipedia,wikidata"]
    assert "model" not in seen[-1]


async def test_failures_come_back_as_text_for_the_model(host: str) -> None:
    tools = load_tool().Tools()
    tools.valves = tools.Valves(llmhost_url=host, api_key="wrong")
    assert (await tools.searxng_search("x")).startswith("Web search failed (401)")
    tools.valves = tools.Valves(llmhost_url=host, api_key="sekrit")
    failed = await tools.searxng_search("offline", mode="research")
    assert failed.startswith("Web search failed (502)") and "arxiv: HTTP connection error" in failed
    wrong_mode = await tools.searxng_search("x", mode="news")
    assert "use one of auto, general, code, research" in wrong_mode
    tools.valves = tools.Valves(llmhost_url="http://127.0.0.1:9")
    assert "did not answer" in await tools.searxng_search("x")


def test_open_webui_builds_the_spec_from_the_docstring(tmp_path: Path) -> None:
    python = os.environ.get("OPEN_WEBUI_PYTHON")
    if not python:
        pytest.skip("OPEN_WEBUI_PYTHON is not set: a Python with open-webui installed checks the spec")
    script = (
        "import asyncio, json, sys\n"
        "from open_webui.utils.plugin import load_tool_module_by_id\n"
        "from open_webui.utils.tools import get_tool_specs\n"
        "content = open(sys.argv[1]).read()\n"
        "tool, front, _ = asyncio.run(load_tool_module_by_id('llmhost_search', content=content))\n"
        "print(json.dumps({'frontmatter': front, 'specs': get_tool_specs(tool)}))\n"
    )
    site = subprocess.run(
        [python, "-c", "import open_webui, pathlib; print(pathlib.Path(open_webui.__file__).parent)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "FRONTEND_BUILD_DIR": f"{site}/frontend",
        "OFFLINE_MODE": "true",
        "WEBUI_AUTH": "False",
        "WEBUI_SECRET_KEY": "test",
        "OAUTH_SESSION_TOKEN_ENCRYPTION_KEY": "test",
    }
    done = subprocess.run(
        [python, "-c", script, str(TOOL)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    (spec,) = answer["specs"]
    assert spec["name"] == "searxng_search"
    assert set(spec["parameters"]["properties"]) == {"query", "mode"}
    assert spec["parameters"]["required"] == ["query"]
    assert spec["parameters"]["properties"]["mode"]["default"] == "auto"
    assert "Search the web" in spec["description"]
    assert answer["frontmatter"]["title"].startswith("llmhost")

"""A real SearXNG from source, with the shipped searxng/settings.yml, behind /tools/searxng_search.

Needs `SEARXNG_SRC` (a SearXNG checkout or a `.tar.gz` of one; CI sets it to the vendored
source); skipped without it. Works offline: SearXNG then reports each engine it tried as
unresponsive, which is also how this test tells a known engine name from an unknown one
(SearXNG silently drops a name it does not know, and falls back to its default engines
when no name is left).
"""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import httpx
import pytest
import yaml

from llmhost.config import Catalog, parse_catalog
from llmhost.gpu.monitor import NullMonitor
from llmhost.server.app import create_app
from llmhost.settings import Settings
from tests.apphelp import ServerThread
from tests.fakes import Recorder
from tests.integrations import searxng
from tests.integrations.test_open_webui_tool import load_tool

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_SETTINGS = ROOT / "searxng" / "settings.yml"
ROUTES = """
[routes.coder]
kind = 'llm'
model = 'Qwen/Qwen2.5-Coder-7B-Instruct'
served_names = ['coder-fast']
"""
LOCAL_ENGINE = "llmhost local"  # a SearXNG json_engine reading the loopback stand-in site below


def shipped_catalog(extra_modes: str = "") -> Catalog:
    text = (ROOT / "models.toml").read_text()
    search = text[text.index("[search]") :]
    if extra_modes:
        search = search.replace("[search.modes]\n", "[search.modes]\n" + extra_modes)
    return parse_catalog(ROUTES + search)


@pytest.fixture(scope="module")
def installed() -> searxng.Installed:
    src = os.environ.get("SEARXNG_SRC")
    if not src:
        pytest.skip("SEARXNG_SRC is not set: point it at a SearXNG checkout or .tar.gz to run this")
    path = Path(src).expanduser()
    assert path.exists(), f"SEARXNG_SRC={src} does not exist"
    return searxng.install(path)


@pytest.fixture(scope="module")
def shipped(
    installed: searxng.Installed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[searxng.Running]:
    with searxng.running(installed, SHIPPED_SETTINGS, tmp_path_factory.mktemp("searxng")) as server:
        yield server


class _Site(http.server.BaseHTTPRequestHandler):
    """A tiny search API on loopback for SearXNG's json_engine: results without the internet."""

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query).get("q", [""])[0]
        results = [
            {
                "title": f"{query} page {i}",
                "url": f"https://docs.example.org/{i}",
                "content": f"about {query} {i}",
            }
            for i in range(7)
        ]
        body = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def with_local_engine(
    installed: searxng.Installed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[searxng.Running]:
    """The shipped settings plus one engine on loopback, so that SearXNG has results to give."""
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    workdir = tmp_path_factory.mktemp("searxng-local")
    settings = yaml.safe_load(SHIPPED_SETTINGS.read_text())
    settings["engines"].append(
        {
            "name": LOCAL_ENGINE,
            "engine": "json_engine",
            "shortcut": "lhl",
            "categories": ["general"],
            "search_url": f"http://127.0.0.1:{site.server_address[1]}/search?q={{query}}",
            "results_query": "results",
            "url_query": "url",
            "title_query": "title",
            "content_query": "content",
            "enable_http": True,
            "timeout": 5.0,
        }
    )
    path = workdir / "settings.yml"
    path.write_text(yaml.safe_dump(settings))
    try:
        with searxng.running(installed, path, workdir) as server:
            yield server
    finally:
        site.shutdown()


def _search(server: searxng.Running, query: str, engines: str | None = None) -> dict[str, Any]:
    path = f"/search?q={quote(query)}&format=json"
    if engines is not None:
        path += f"&engines={quote(engines)}"
    status, body = server.get(path)
    assert status == 200, body[:500]
    answer: dict[str, Any] = json.loads(body)
    return answer


def _reported(answer: dict[str, Any]) -> set[str]:
    """Every engine SearXNG names in an answer: those that failed and those that found something."""
    names = {str(item[0]) for item in answer.get("unresponsive_engines", [])}
    for result in answer.get("results", []):
        names.update(result.get("engines") or [result.get("engine")])
    return names


def test_install_from_source_is_reused_and_quick(
    installed: searxng.Installed, capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        how = "reused from an earlier run" if installed.reused else "installed now"
        print(f"\n[searxng] install from source: {installed.install_seconds} s ({how}, {installed.venv})")
    assert installed.install_seconds < 300
    assert (installed.venv / "bin" / "granian").exists()
    again = searxng.install(Path(os.environ["SEARXNG_SRC"]).expanduser())
    assert again.reused and again.venv == installed.venv


def test_it_starts_and_answers_json(shipped: searxng.Running, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n[searxng] started with the shipped settings.yml in {shipped.start_seconds} s")
    answer = _search(shipped, "llmhost")
    assert {"query", "results", "unresponsive_engines"} <= set(answer)
    assert answer["query"] == "llmhost"
    assert "ultrasecretkey" not in shipped.log_text()


def test_the_enabled_engines_are_exactly_those_of_the_modes(shipped: searxng.Running) -> None:
    status, body = shipped.get("/config")
    assert status == 200
    enabled = {engine["name"] for engine in json.loads(body)["engines"] if engine["enabled"]}
    used = {engine for engines in shipped_catalog().search.modes.values() for engine in engines}
    assert enabled == used


def test_each_mode_engine_is_a_name_searxng_knows(
    shipped: searxng.Running, capsys: pytest.CaptureFixture[str]
) -> None:
    # An unknown name is not reported at all: that is what a typo in a mode would look like.
    assert "no-such-engine" not in _reported(_search(shipped, "llmhost", "no-such-engine"))
    init_failed = []
    for mode, engines in shipped_catalog().search.modes.items():
        for engine in engines:
            if engine in _reported(_search(shipped, "llmhost", engine)):
                continue
            # An engine that fetches data when SearXNG starts (wikidata) is left out of every
            # search when that failed, offline; SearXNG says so in its log, by name.
            assert f"{engine}: engine init was not successful" in shipped.log_text(), (
                f"mode '{mode}': SearXNG did not run engine '{engine}'; is the name right?"
            )
            init_failed.append(engine)
    if init_failed:
        with capsys.disabled():
            print(f"\n[searxng] engines whose start-up fetch failed (offline?): {', '.join(init_failed)}")


def _app(url: str, catalog: Catalog, key: str | None = None):  # type: ignore[no-untyped-def]
    settings = Settings(_env_file=None, searxng_url=url, vllm_api_key=key)
    return create_app(settings, catalog, backend_factory=Recorder().factory, gpu=NullMonitor("test"))


async def test_the_tool_endpoint_reports_what_searxng_did(shipped: searxng.Running) -> None:
    catalog = shipped_catalog()
    app = _app(shipped.url, catalog)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://llmhost", timeout=60) as client:
            for mode, engines in catalog.search.modes.items():
                response = await client.get("/tools/searxng_search", params={"q": "vllm", "mode": mode})
                body = response.json()
                if response.status_code == 200:  # online: results, perhaps with some failures
                    assert body["mode"] == mode and body["engines_used"] == list(engines)
                    assert set(body) == {"query", "mode", "engines_used", "results", "unresponsive_engines"}
                    continue
                # Offline every engine fails: an error that says so, never an empty success.
                assert response.status_code == 502, body
                assert body["error"]["code"] == "search_engines_failed"
                failed = {u for u in engines if f"{u}: " in body["error"]["message"]}
                assert failed, body["error"]["message"]


async def test_results_through_searxng_in_the_documented_shape(with_local_engine: searxng.Running) -> None:
    catalog = shipped_catalog(extra_modes=f'local = ["{LOCAL_ENGINE}", "duckduckgo"]\n')
    app = _app(with_local_engine.url, catalog)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://llmhost", timeout=60) as client:
            response = await client.post(
                "/tools/searxng_search", json={"query": "sleep mode", "mode": "local", "max_results": 3}
            )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"query", "mode", "engines_used", "results", "unresponsive_engines"}
    assert body["mode"] == "local" and body["engines_used"] == [LOCAL_ENGINE, "duckduckgo"]
    local = [r for r in body["results"] if r["engine"] == LOCAL_ENGINE]
    assert len(body["results"]) == 3 and local
    for result in body["results"]:
        assert set(result) == {"title", "url", "snippet", "content", "engine"}
        assert result["snippet"] == result["content"]
    for result in local:
        assert result["url"].startswith("https://docs.example.org/")
        assert result["title"].startswith("sleep mode page ") and result["snippet"].startswith(
            "about sleep mode"
        )
    for failed in body["unresponsive_engines"]:
        assert set(failed) == {"engine", "error"} and failed["engine"] == "duckduckgo"


async def test_the_open_webui_tool_against_llmhost_and_searxng(with_local_engine: searxng.Running) -> None:
    catalog = shipped_catalog(extra_modes=f'local = ["{LOCAL_ENGINE}"]\n')
    tool = load_tool().Tools()
    with ServerThread(_app(with_local_engine.url, catalog, key="sekrit")) as host:
        tool.valves = tool.Valves(llmhost_url=host.url, api_key="sekrit", max_results=2)
        text = await tool.searxng_search("sleep mode", mode="local", __model__={"id": "coder-fast"})
    assert "(mode local)" in text
    assert "https://docs.example.org/0" in text and "about sleep mode 1" in text
    assert "https://docs.example.org/2" not in text  # max_results from the valves

"""/tools/searxng_search against a stand-in SearXNG (a local HTTP server speaking its JSON API).

The stand-in answers like SearXNG 9fea412 does (checked against the real one in
tests/integrations/test_searxng_real.py): `engines=a,b` picks the engines, unreachable
engines come back as `unresponsive_engines: [[name, error], ...]`, and `format=json` is 403
when JSON output is off. A query word steers it: "slow" answers only once the test has had
llmhost's answer, "offline" fails every engine, "partial" fails all but the first.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from llmhost.config import ConfigError, SearchConfig, load_catalog, parse_catalog
from llmhost.gpu.monitor import NullMonitor
from llmhost.server.app import create_app
from llmhost.settings import Settings
from tests import catalogs
from tests.apphelp import running
from tests.fakes import Recorder

ROOT = Path(__file__).resolve().parents[2]
ROUTES = catalogs.text(catalogs.SHIPPED_LLMS)
CATALOG = parse_catalog(ROUTES + "[search]\ntimeout_seconds = 1\n")
seen: list[dict[str, list[str]]] = []
# A "slow" search is answered only once the test that sent it has had its answer from
# llmhost: slower than any timeout, however slow the machine.
slow_answer = threading.Event()


class _SearXNG(http.server.BaseHTTPRequestHandler):
    json_enabled = True

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        seen.append(query)
        if query.get("format") != ["json"] or not self.json_enabled:
            self.send_response(403)
            self.end_headers()
            return
        words = query["q"][0].split()
        engines = query["engines"][0].split(",")
        if "slow" in words:
            slow_answer.wait(30)
        failed = engines if "offline" in words else engines[1:] if "partial" in words else []
        answering = [e for e in engines if e not in failed]
        results = [
            {"title": f"hit {i}", "url": f"https://example.org/{i}", "content": f"text {i}", "engine": e}
            for i, e in enumerate(answering * 4)
        ]
        if "nothing" in words:
            results = []
        body = {
            "query": query["q"][0],
            "results": results,
            "unresponsive_engines": [[e, "HTTP connection error"] for e in sorted(failed)],
        }
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())
        except BrokenPipeError:  # "slow": llmhost gave up waiting, as it should
            pass

    def log_message(self, *args: object) -> None:
        pass


class _NoJSON(_SearXNG):
    json_enabled = False


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def searxng() -> Iterator[str]:
    yield from _serve(_SearXNG)


@pytest.fixture(scope="module")
def searxng_without_json() -> Iterator[str]:
    yield from _serve(_NoJSON)


def app_for(url: str, key: str | None = None):  # type: ignore[no-untyped-def]
    settings = Settings(_env_file=None, searxng_url=url, vllm_api_key=key)
    return create_app(settings, CATALOG, backend_factory=Recorder().factory, gpu=NullMonitor("test"))


def assert_error(response: Any, status: int, code: str | None, param: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["param"] == param
    message: str = error["message"]
    return message


# ---- shape and modes ----------------------------------------------------------------------


async def test_search_returns_the_documented_shape(searxng: str) -> None:
    async with running(app_for(searxng)) as client:
        response = await client.get(
            "/tools/searxng_search", params={"q": "vllm sleep mode", "max_results": 3}
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"query", "mode", "engines_used", "results", "unresponsive_engines"}
        assert body["query"] == "vllm sleep mode" and body["mode"] == "general"
        assert body["engines_used"] == ["duckduckgo", "brave", "wikipedia", "wikidata"]
        assert body["unresponsive_engines"] == []
        assert [r["url"] for r in body["results"]] == [f"https://example.org/{i}" for i in range(3)]
        first = body["results"][0]
        # `content` stays for clients written before `snippet`.
        assert first == {
            "title": "hit 0",
            "url": "https://example.org/0",
            "snippet": "text 0",
            "content": "text 0",
            "engine": "duckduckgo",
        }
        assert seen[-1]["q"] == ["vllm sleep mode"] and seen[-1]["format"] == ["json"]
        assert seen[-1]["engines"] == ["duckduckgo,brave,wikipedia,wikidata"]
        posted = await client.post("/tools/searxng_search", json={"query": "x", "time_range": "week"})
        assert posted.status_code == 200 and len(posted.json()["results"]) == 5  # the default
        assert seen[-1]["time_range"] == ["week"]


@pytest.mark.parametrize(
    ("fields", "mode"),
    [
        ({"mode": "code"}, "code"),
        ({"mode": "research"}, "research"),
        ({"mode": "general", "model": "coder-fast"}, "general"),  # an explicit mode wins
        ({}, "general"),  # auto without a model
        ({"model": "coder-fast"}, "code"),
        ({"model": "qwen2.5-coder-7b-instruct"}, "code"),  # not served here: its name decides
        ({"model": "deepseek-coder-v2-lite"}, "code"),
        ({"model": "general-reasoner"}, "research"),  # its route's model is DeepSeek-R1
        ({"model": "DeepSeek-R1-Distill-Llama-8B"}, "research"),
        ({"model": "chat-general", "mode": "auto"}, "general"),
        ({"model": "some-unknown-model"}, "general"),
    ],
)
async def test_modes_pick_their_engines(searxng: str, fields: dict[str, str], mode: str) -> None:
    async with running(app_for(searxng)) as client:
        posted = await client.post("/tools/searxng_search", json={"query": "q", **fields})
        got = await client.get("/tools/searxng_search", params={"q": "q", **fields})
    engines = list(CATALOG.search.modes[mode])
    for response in (posted, got):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["mode"] == mode and body["engines_used"] == engines
        assert {r["engine"] for r in body["results"]} <= set(engines)
    assert seen[-1]["engines"] == [",".join(engines)]


async def test_a_mode_table_from_models_toml(searxng: str) -> None:
    catalog = parse_catalog(
        ROUTES + "[search]\nmax_results = 2\n[search.modes]\ngeneral = ['duckduckgo']\n"
        "code = ['github']\nresearch = ['arxiv']\nnews = ['bing news']\n"
    )
    settings = Settings(_env_file=None, searxng_url=searxng)
    app = create_app(settings, catalog, backend_factory=Recorder().factory, gpu=NullMonitor("test"))
    async with running(app) as client:
        news = await client.get("/tools/searxng_search", params={"q": "x", "mode": "news"})
        assert news.status_code == 200
        assert news.json()["engines_used"] == ["bing news"] and len(news.json()["results"]) == 2


async def test_partial_failures_are_reported_beside_the_results(searxng: str) -> None:
    async with running(app_for(searxng)) as client:
        response = await client.get("/tools/searxng_search", params={"q": "partial", "mode": "code"})
    assert response.status_code == 200
    body = response.json()
    assert {r["engine"] for r in body["results"]} == {"github"}
    assert body["unresponsive_engines"] == [
        {"engine": "duckduckgo", "error": "HTTP connection error"},
        {"engine": "stackoverflow", "error": "HTTP connection error"},
    ]


async def test_no_results_is_a_plain_empty_answer(searxng: str) -> None:
    async with running(app_for(searxng)) as client:
        response = await client.get("/tools/searxng_search", params={"q": "nothing"})
    assert response.status_code == 200 and response.json()["results"] == []


# ---- failures -----------------------------------------------------------------------------


async def test_every_engine_failed_is_an_error_not_an_empty_success(searxng: str) -> None:
    async with running(app_for(searxng)) as client:
        response = await client.get("/tools/searxng_search", params={"q": "offline", "mode": "research"})
    message = assert_error(response, 502, "search_engines_failed")
    for engine in ("arxiv", "semantic scholar", "duckduckgo"):
        assert f"{engine}: HTTP connection error" in message
    assert "Retry-After" in response.headers


async def test_searxng_down_slow_or_without_json(searxng: str, searxng_without_json: str) -> None:
    async with running(app_for("http://127.0.0.1:9")) as client:
        down = await client.get("/tools/searxng_search", params={"q": "x"})
        assert_error(down, 502, "search_unavailable")
        assert "Retry-After" in down.headers
    async with running(app_for(searxng)) as client:
        started = time.monotonic()
        try:
            slow = await client.get("/tools/searxng_search", params={"q": "slow"})
        finally:
            slow_answer.set()
        assert_error(slow, 504, "search_timeout")
        assert time.monotonic() - started < 1.9  # [search] timeout_seconds = 1 here
    async with running(app_for(searxng_without_json)) as client:
        refused = await client.post("/tools/searxng_search", json={"query": "x"})
        message = assert_error(refused, 502, "search_unavailable")
        assert "enable json in search.formats" in message


async def test_bad_requests(searxng: str) -> None:
    async with running(app_for(searxng)) as client:
        assert_error(await client.get("/tools/searxng_search"), 400, None, "q")
        assert_error(await client.get("/tools/searxng_search", params={"q": ""}), 400, None, "q")
        bad = await client.post("/tools/searxng_search", json={"query": "x", "max_results": 500})
        assert_error(bad, 400, None, "max_results")
        mode = await client.post("/tools/searxng_search", json={"query": "x", "mode": "news"})
        assert "auto, general, code, research" in assert_error(mode, 400, None, "mode")
        extra = await client.post("/tools/searxng_search", json={"query": "x", "engines": "all"})
        assert_error(extra, 400, None, "engines")
        # GET ignores parameters it does not know, as it always did.
        stray = await client.get("/tools/searxng_search", params={"q": "x", "format": "html"})
        assert stray.status_code == 200


async def test_search_needs_the_key(searxng: str) -> None:
    async with running(app_for(searxng, key="k")) as client:
        assert (await client.get("/tools/searxng_search", params={"q": "x"})).status_code == 401
        assert (await client.get("/tools/searxng_search")).status_code == 401  # the key comes first
        ok = await client.get(
            "/tools/searxng_search", params={"q": "x"}, headers={"Authorization": "Bearer k"}
        )
        assert ok.status_code == 200


# ---- the [search] table -------------------------------------------------------------------


def test_the_shipped_modes_are_the_documented_defaults() -> None:
    text = (ROOT / "models.toml").read_text()
    shipped = parse_catalog(ROUTES + text[text.index("[search]") :]).search
    assert shipped == SearchConfig()
    assert shipped.modes == {
        "general": ("duckduckgo", "brave", "wikipedia", "wikidata"),
        "code": ("github", "stackoverflow", "duckduckgo"),
        "research": ("arxiv", "semantic scholar", "duckduckgo"),
    }
    assert shipped.max_results == 5 and shipped.default_mode == "general"


def test_searxng_settings_enable_exactly_the_engines_of_the_modes() -> None:
    settings = yaml.safe_load((ROOT / "searxng" / "settings.yml").read_text())
    kept = settings["use_default_settings"]["engines"]["keep_only"]
    used = {engine for engines in SearchConfig().modes.values() for engine in engines}
    assert sorted(kept) == sorted(used) and len(kept) == len(set(kept))
    assert "json" in settings["search"]["formats"]
    for override in settings.get("engines", []):
        assert override["name"] in used and not override.get("disabled", False)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("[search.modes]\ngeneral = ['duckduckgo']\n", "[search.auto] names mode 'code'"),
        ("[search]\ndefault_mode = 'news'\n", "default_mode 'news' is not in [search.modes]"),
        ("[search.modes]\nauto = ['x']\ngeneral = ['x']\ncode = ['x']\nresearch = ['x']\n", "not 'auto'"),
        ("[search.modes]\ngeneral = []\ncode = ['x']\nresearch = ['x']\n", "at least one SearXNG engine"),
        ("[search]\nmax_results = 0\n", "[search] max_results"),
        ("[search]\nmax_result = 3\n", "unknown key 'max_result'"),
    ],
)
def test_bad_search_tables_name_the_problem(table: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(ROUTES + table)
    assert problem in str(caught.value)


def test_without_a_search_table_the_defaults_apply(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(ROUTES)
    assert load_catalog(path).search == SearchConfig()

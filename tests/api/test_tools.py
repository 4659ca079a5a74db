"""/tools/searxng_search against a stand-in SearXNG (a local HTTP server speaking its JSON API)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest

from llmhost.app import create_app
from llmhost.config import parse_catalog
from llmhost.gpu import NullMonitor
from llmhost.settings import Settings
from tests.apphelp import running
from tests.fakes import Recorder

CATALOG = parse_catalog("[routes.coder]\nkind = 'llm'\nmodel = 'org/coder'\n")
seen: list[dict[str, list[str]]] = []


class _SearXNG(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        seen.append(query)
        if query.get("format") != ["json"]:
            self.send_response(403)
            self.end_headers()
            return
        results = [
            {
                "title": f"hit {i}",
                "url": f"https://example.org/{i}",
                "content": "text",
                "engine": "duckduckgo",
            }
            for i in range(8)
        ]
        body = json.dumps({"query": query["q"][0], "results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def searxng() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SearXNG)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def app_for(url: str, key: str | None = None):  # type: ignore[no-untyped-def]
    settings = Settings(_env_file=None, searxng_url=url, vllm_api_key=key)  # type: ignore[call-arg]
    return create_app(settings, CATALOG, backend_factory=Recorder().factory, gpu=NullMonitor("test"))


async def test_search_returns_results_in_a_stable_shape(searxng: str) -> None:
    async with running(app_for(searxng)) as client:
        response = await client.get(
            "/tools/searxng_search", params={"q": "vllm sleep mode", "max_results": 3}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["query"] == "vllm sleep mode"
        assert [r["url"] for r in body["results"]] == [f"https://example.org/{i}" for i in range(3)]
        assert seen[-1]["q"] == ["vllm sleep mode"] and seen[-1]["format"] == ["json"]
        posted = await client.post("/tools/searxng_search", json={"query": "x", "time_range": "week"})
        assert posted.status_code == 200 and len(posted.json()["results"]) == 5
        assert seen[-1]["time_range"] == ["week"]


async def test_bad_requests_and_an_absent_searxng() -> None:
    async with running(app_for("http://127.0.0.1:9")) as client:
        assert (await client.get("/tools/searxng_search")).status_code == 400
        bad = await client.post("/tools/searxng_search", json={"query": "x", "max_results": 500})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "max_results"
        down = await client.get("/tools/searxng_search", params={"q": "x"})
        assert down.status_code == 502
        assert down.json()["error"]["code"] == "search_unavailable" and "Retry-After" in down.headers


async def test_search_needs_the_key(searxng: str) -> None:
    async with running(app_for(searxng, key="k")) as client:
        assert (await client.get("/tools/searxng_search", params={"q": "x"})).status_code == 401
        ok = await client.get(
            "/tools/searxng_search", params={"q": "x"}, headers={"Authorization": "Bearer k"}
        )
        assert ok.status_code == 200

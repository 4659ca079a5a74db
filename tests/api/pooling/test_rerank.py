"""/v1/rerank against a real tiny cross-encoder (an XLMRobertaForSequenceClassification with
one label, the shape of bge-reranker-v2-m3) on vLLM's pooling runner, sent as the clients
that use it send it: Open WebUI's external reranker and Continue's `vllm` reranker.

One engine for the module. The host has a key, as a LAN install does: both clients send it
as `Authorization: Bearer`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmhost.config import parse_catalog
from tests.api.pooling.conftest import pooling_route
from tests.apphelp import ServerThread, make_app

pytestmark = pytest.mark.engine

RERANKER = "xlmr-reranker-tiny"
KEY = "rerank-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
DOCUMENTS = ["paris is the capital of france", "the dog", "what is the weather", "a cat"]


@pytest.fixture(scope="module")
def server(pooling_models: Any) -> Iterator[ServerThread]:
    catalog = parse_catalog(pooling_route("rerank", "rerank", pooling_models.reranker, RERANKER))
    with ServerThread(make_app(catalog, api_key=KEY)) as srv:
        yield srv


def post(
    server: ServerThread, path: str, body: dict[str, Any], headers: dict[str, str] = AUTH
) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=300)


def test_open_webui_external_reranker(server: ServerThread) -> None:
    # open_webui/retrieval/models/external.py: this body to RAG_EXTERNAL_RERANKER_URL, then the
    # scores in document order from `results` sorted by `index`.
    body = {"model": RERANKER, "query": "what is the capital of france", "documents": DOCUMENTS}
    response = post(server, "/v1/rerank", {**body, "top_n": len(DOCUMENTS)})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2, 3]
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)  # most relevant first
    assert {r["document"]["text"] for r in results} == set(DOCUMENTS)
    assert len({round(s, 6) for s in scores}) > 1  # a real cross-encoder's scores, per pair


def test_continue_vllm_reranker(server: ServerThread) -> None:
    # Continue's `vllm` provider: openai-adapters POSTs {model, query, documents} to
    # new URL("rerank", apiBase) with apiBase ".../openai/v1/", and reads `results`.
    body = {"model": RERANKER, "query": "def add(a, b)", "documents": ["return a + b", "the dog"]}
    response = post(server, "/openai/v1/rerank", body)
    assert response.status_code == 200, response.text
    assert sorted(r["index"] for r in response.json()["results"]) == [0, 1]


def test_top_n_and_the_route_path(server: ServerThread) -> None:
    body = {"query": "capital of france", "documents": DOCUMENTS, "top_n": 1}
    response = post(server, "/rerank/v1/rerank", body)  # the model may be left out on its path
    assert response.status_code == 200, response.text
    data = response.json()
    assert len(data["results"]) == 1 and data["model"] == RERANKER
    assert data["usage"]["prompt_tokens"] > 0


def test_the_key_is_required(server: ServerThread) -> None:
    body = {"model": RERANKER, "query": "q", "documents": ["d"]}
    response = post(server, "/v1/rerank", body, headers={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_other_endpoints_name_the_rerank_endpoint(server: ServerThread) -> None:
    for path, body in (
        ("/v1/embeddings", {"model": RERANKER, "input": "x"}),
        ("/v1/chat/completions", {"model": RERANKER, "messages": [{"role": "user", "content": "hi"}]}),
    ):
        response = post(server, path, body)
        assert response.status_code == 400, path
        assert response.json()["error"]["message"] == f"'{RERANKER}' is a reranker: use POST /v1/rerank."


def test_a_bad_body_is_400_naming_the_field(server: ServerThread) -> None:
    response = post(server, "/v1/rerank", {"model": RERANKER, "query": "q"})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "'documents' is required.",
        "type": "invalid_request_error",
        "param": "documents",
        "code": None,
    }


def test_counted_in_stats(server: ServerThread) -> None:
    post(server, "/v1/rerank", {"model": RERANKER, "query": "q", "documents": ["d"]})
    (model,) = httpx.get(f"{server.url}/stats", headers=AUTH).json()["models"]
    assert model["route"] == "rerank" and model["kind"] == "rerank"
    assert model["loads"] == 1 and model["in_flight"] == 0 and model["state"] == "ready"

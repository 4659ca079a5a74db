"""Which route an embeddings or rerank request means, and the 400 that names the endpoint a
model serves when it is sent to another one: the host's own logic, with fake backends (no
model loads; every refusal here comes before any)."""

from __future__ import annotations

from typing import Any

import pytest

from llmhost.config import parse_catalog
from llmhost.config.text import models_toml
from tests.apphelp import envelope, make_app, running
from tests.fakes import Recorder

ROUTES: dict[str, dict[str, Any]] = {
    "coder": {"kind": "llm", "model": "org/coder", "served_names": ["coder-fast"]},
    "embed": {"kind": "embedding", "model": "org/embedder", "served_names": ["embedder"]},
    "embed2": {"kind": "embedding", "model": "org/embedder-2", "served_names": ["embedder-2"]},
    "rerank": {"kind": "rerank", "model": "org/reranker", "served_names": ["reranker"]},
    "vision": {"kind": "diffusion", "model": "org/sd", "served_names": ["sd"]},
}


def app() -> Any:
    return make_app(parse_catalog(models_toml({}, ROUTES)), factory=Recorder().factory)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/v1/chat/completions",
            {"model": "embedder", "messages": [{"role": "user", "content": "hi"}]},
            "'embedder' is an embedding model: use POST /v1/embeddings.",
        ),
        (
            "/embed/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}]},
            "'embedder' is an embedding model: use POST /v1/embeddings.",
        ),
        (
            "/v1/completions",
            {"model": "reranker", "prompt": "x"},
            "'reranker' is a reranker: use POST /v1/rerank.",
        ),
        (
            "/v1/embeddings",
            {"model": "coder-fast", "input": "x"},
            "'coder-fast' is a language model: use POST /v1/chat/completions.",
        ),
        (
            "/v1/embeddings",
            {"model": "sd", "input": "x"},
            "'sd' is an image model: use POST /v1/images/generations.",
        ),
        (
            "/openai/v1/rerank",
            {"model": "embedder", "query": "q", "documents": ["d"]},
            "'embedder' is an embedding model: use POST /v1/embeddings.",
        ),
        (
            "/rerank/v1/embeddings",
            {"input": "x"},
            "'reranker' is a reranker: use POST /v1/rerank.",
        ),
        (
            "/v1/embeddings",
            {"input": "x"},
            "'model' is required: name one of the embedding models (embedder, embedder-2).",
        ),
    ],
)
async def test_the_wrong_endpoint_is_a_400_naming_the_right_one(
    path: str, body: dict[str, Any], message: str
) -> None:
    application = app()
    async with running(application) as client:
        response = await client.post(path, json=body)
        assert response.status_code == 400
        error = envelope(response.json())
        assert error["message"] == message
        assert error["type"] == "invalid_request_error" and error["param"] == "model"
        stats = (await client.get("/stats")).json()["models"]
        assert all(m["loads"] == 0 and m["waiting"] == 0 for m in stats)


async def test_unknown_model_and_other_routes_model() -> None:
    async with running(app()) as client:
        unknown = await client.post("/v1/embeddings", json={"model": "nope", "input": "x"})
        assert unknown.status_code == 404 and envelope(unknown.json())["code"] == "model_not_found"
        elsewhere = await client.post("/embed/v1/embeddings", json={"model": "embedder-2", "input": "x"})
        assert elsewhere.status_code == 404 and "/embed2" in envelope(elsewhere.json())["message"]


async def test_listed_in_models_and_routes_with_their_kind_and_paths() -> None:
    async with running(app()) as client:
        cards = {m["id"]: m for m in (await client.get("/v1/models")).json()["data"]}
        assert cards["embedder"]["kind"] == "embedding" and cards["reranker"]["kind"] == "rerank"
        routes = {r["route"]: r for r in (await client.get("/routes")).json()["routes"]}
        assert routes["rerank"]["paths"] == ["/rerank/v1/models", "/rerank/v1/rerank"]
        assert routes["embed"]["auth"] == "key"

"""/v1/embeddings against a real tiny embedding engine (vLLM's pooling runner on CPU),
through the `openai` SDK and httpx.

One engine for the module: the embedder. The chat route beside it is never loaded (the
requests sent to it are refused before any load).
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from llmhost.config import parse_catalog
from llmhost.tiny_models.pooling import EMBEDDER_HIDDEN_SIZE
from tests.api.pooling.conftest import pooling_route
from tests.apphelp import ServerThread, make_app, tiny_llm_route

pytestmark = pytest.mark.engine

EMBEDDER = "qwen3-embedding-tiny"


@pytest.fixture(scope="module")
def server(tiny_models: Any, pooling_models: Any) -> Iterator[ServerThread]:
    catalog = parse_catalog(
        # Qwen3-Embedding supports Matryoshka dimensions; vLLM needs to be told (models.toml).
        pooling_route(
            "embed", "embedding", pooling_models.embedder, EMBEDDER, hf_overrides={"is_matryoshka": True}
        )
        + tiny_llm_route("coder", tiny_models.llm, "qwen2.5-coder-tiny")
    )
    with ServerThread(make_app(catalog)) as srv:
        yield srv


def client(server: ServerThread, prefix: str = "/openai/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}{prefix}", api_key="unused", max_retries=0, timeout=300)


def stats(server: ServerThread) -> dict[str, dict[str, Any]]:
    return {m["route"]: m for m in httpx.get(f"{server.url}/stats").json()["models"]}


def embed(server: ServerThread, path: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json={"model": EMBEDDER, **body}, timeout=300)


def test_listed_with_its_kind_before_any_load(server: ServerThread) -> None:
    cards = {m["id"]: m for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
    assert cards[EMBEDDER]["kind"] == "embedding" and cards[EMBEDDER]["route"] == "embed"
    assert not cards[EMBEDDER]["loaded"]
    routes = {r["route"]: r for r in httpx.get(f"{server.url}/routes").json()["routes"]}
    assert routes["embed"]["paths"] == ["/embed/v1/models", "/embed/v1/embeddings"]
    assert stats(server)["embed"]["loads"] == 0


def test_openai_sdk_embeds_a_string_to_the_hidden_size(server: ServerThread) -> None:
    # The SDK asks for base64 by default and decodes it: the shape Open WebUI and Continue get.
    result = client(server).embeddings.create(model=EMBEDDER, input="The capital of France is Paris.")
    (item,) = result.data
    assert len(item.embedding) == EMBEDDER_HIDDEN_SIZE
    assert math.isclose(math.hypot(*item.embedding), 1.0, rel_tol=1e-4)  # its Normalize module
    assert result.model == EMBEDDER and result.usage.prompt_tokens > 0
    assert stats(server)["embed"]["loads"] == 1


def test_a_batch_gives_one_vector_per_input_in_order(server: ServerThread) -> None:
    texts = ["def add(a, b):", "return a + b", "What is the weather in Paris?"]
    batch = client(server, "/v1").embeddings.create(model="embed", input=texts, encoding_format="float")
    assert [d.index for d in batch.data] == [0, 1, 2]
    singles = [
        client(server).embeddings.create(model=EMBEDDER, input=t, encoding_format="float") for t in texts
    ]
    for one, item in zip(singles, batch.data, strict=True):
        assert all(
            math.isclose(a, b, abs_tol=1e-5)
            for a, b in zip(one.data[0].embedding, item.embedding, strict=True)
        )
    assert batch.data[0].embedding != batch.data[2].embedding


def test_base64_decodes_to_the_same_floats(server: ServerThread) -> None:
    texts = ["hello world", "fn main() {}"]
    floats = embed(server, "/v1/embeddings", input=texts, encoding_format="float").json()["data"]
    encoded = embed(server, "/v1/embeddings", input=texts, encoding_format="base64").json()["data"]
    for plain, packed in zip(floats, encoded, strict=True):
        raw = base64.b64decode(packed["embedding"])
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)  # little-endian float32, as OpenAI's
        assert len(decoded) == EMBEDDER_HIDDEN_SIZE
        assert list(decoded) == pytest.approx(plain["embedding"], abs=1e-6)


def test_dimensions_of_a_matryoshka_model(server: ServerThread) -> None:
    result = client(server).embeddings.create(model=EMBEDDER, input=["a", "b"], dimensions=16)
    assert [len(d.embedding) for d in result.data] == [16, 16]


def test_every_path_serves_it(server: ServerThread) -> None:
    for path in ("/openai/v1/embeddings", "/v1/embeddings", "/openai/embeddings", "/embed/v1/embeddings"):
        response = embed(server, path, input="x")
        assert response.status_code == 200, (path, response.text)
        assert response.json()["object"] == "list"
    # On the route's own path the model may be left out.
    response = httpx.post(f"{server.url}/embed/v1/embeddings", json={"input": "x"}, timeout=300)
    assert (
        response.status_code == 200 and len(response.json()["data"][0]["embedding"]) == EMBEDDER_HIDDEN_SIZE
    )


def test_chat_to_the_embedding_model_names_its_endpoint(server: ServerThread) -> None:
    for prefix in ("/openai/v1", "/embed/v1"):
        with pytest.raises(openai.BadRequestError) as caught:
            client(server, prefix).chat.completions.create(
                model=EMBEDDER, messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
        error = caught.value.body
        assert isinstance(error, dict) and error["param"] == "model"
        assert error["message"] == f"'{EMBEDDER}' is an embedding model: use POST /v1/embeddings."


def test_embeddings_of_the_chat_model_name_its_endpoint(server: ServerThread) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).embeddings.create(model="qwen2.5-coder-tiny", input="hi")
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["message"] == "'qwen2.5-coder-tiny' is a language model: use POST /v1/chat/completions."
    rerank = httpx.post(f"{server.url}/v1/rerank", json={"model": EMBEDDER, "query": "q", "documents": ["d"]})
    assert rerank.status_code == 400
    assert (
        rerank.json()["error"]["message"] == f"'{EMBEDDER}' is an embedding model: use POST /v1/embeddings."
    )
    assert stats(server)["coder"]["loads"] == 0  # refused before any load


def test_bad_requests_are_400_in_the_openai_envelope(server: ServerThread) -> None:
    bad_format = embed(server, "/v1/embeddings", input="x", encoding_format="hex")
    assert bad_format.status_code == 400
    assert bad_format.json()["error"]["param"] == "encoding_format"
    missing = embed(server, "/v1/embeddings")
    assert missing.status_code == 400 and missing.json()["error"]["message"] == "'input' is required."
    too_long = embed(server, "/v1/embeddings", input="word " * 2000)  # over max_model_len 512
    assert too_long.status_code == 400, too_long.text
    assert too_long.json()["error"]["type"] == "invalid_request_error"
    assert stats(server)["embed"]["in_flight"] == 0


def test_counted_in_stats_and_metrics(server: ServerThread) -> None:
    client(server).embeddings.create(model=EMBEDDER, input="counted")
    model = stats(server)["embed"]
    assert model["kind"] == "embedding" and model["state"] == "ready"
    assert model["loads"] == 1 and model["in_flight"] == 0 and model["last_hit"] is not None
    text = httpx.get(f"{server.url}/metrics").text
    assert f'llmhost_model_loads_total{{model="{EMBEDDER}",route="embed"}} 1.0' in text
    assert f'model_name="{EMBEDDER}"' in text  # the pooling engine's own vllm: series

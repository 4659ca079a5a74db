"""What the Responses endpoints refuse before any model is touched, in OpenAI's envelope:
on the real app with a fake backend (vLLM's ResponsesRequest validates; no engine)."""

from __future__ import annotations

import pytest

from tests import catalogs
from tests.apphelp import envelope, make_app, running
from tests.suites.test_fuzz import ServingRecorder

CATALOG = catalogs.catalog(catalogs.CODER_AND_VISION)


@pytest.fixture(autouse=True)
def _store_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_ENABLE_RESPONSES_API_STORE", raising=False)  # vLLM's default


@pytest.mark.parametrize("path", ["/openai/v1/responses", "/v1/responses", "/coder/v1/responses"])
async def test_refusals_load_nothing(path: str) -> None:
    recorder = ServingRecorder(load_seconds=0, stop_seconds=0)
    async with running(make_app(CATALOG, factory=recorder.factory)) as client:
        previous = await client.post(
            path, json={"model": "coder-fast", "input": "hi", "previous_response_id": "r1"}
        )
        background = await client.post(path, json={"model": "coder-fast", "input": "hi", "background": True})
        unknown = await client.post(path, json={"model": "gpt-5-codex", "input": "hi"})
        no_input = await client.post(path, json={"model": "coder-fast", "input": 5})
        served = await client.post(path, json={"model": "coder-fast", "input": "hi"})

    error = envelope(previous.json())
    assert previous.status_code == 400
    assert (error["code"], error["param"]) == ("previous_response_not_found", "previous_response_id")
    assert "VLLM_ENABLE_RESPONSES_API_STORE=1" in error["message"]
    error = envelope(background.json())
    assert background.status_code == 400 and (error["param"], error["code"]) == (
        "background",
        "unsupported_parameter",
    )
    error = envelope(unknown.json())
    assert unknown.status_code == 404 and error["code"] == "model_not_found"
    assert no_input.status_code == 400 and envelope(no_input.json())["type"] == "invalid_request_error"
    assert served.status_code == 200 and recorder.served == ["response coder"]  # the only one served


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/responses/resp_1"),
        ("DELETE", "/openai/v1/responses/resp_1"),
        ("POST", "/v1/responses/resp_1/cancel"),
    ],
)
async def test_responses_by_id_are_not_kept(method: str, path: str) -> None:
    async with running(make_app(CATALOG, factory=ServingRecorder().factory)) as client:
        response = await client.request(method, path)
    assert response.status_code == 501
    assert "does not keep responses" in envelope(response.json())["message"]


@pytest.mark.parametrize("prefix", ["/openai/v1", "/v1"])
@pytest.mark.parametrize(
    ("route", "model", "message"),
    [
        ("embed", "embedder", "'embedder' is an embedding model: use POST /v1/embeddings."),
        ("rerank", "reranker", "'reranker' is a reranker: use POST /v1/rerank."),
    ],
)
async def test_a_pooling_model_is_a_400_naming_its_endpoint(
    prefix: str, route: str, model: str, message: str
) -> None:
    """vLLM builds no Responses serving for a pooling engine (llmhost.backends.vllm.pooling):
    the request is refused before any lease, as chat's is (llmhost.api.resolve)."""
    recorder = ServingRecorder(load_seconds=0, stop_seconds=0)
    routes = {"coder": catalogs.CODER, "embed": catalogs.EMBED, "rerank": catalogs.RERANK}
    async with running(make_app(catalogs.catalog(routes), factory=recorder.factory)) as client:
        unified = await client.post(f"{prefix}/responses", json={"model": model, "input": "hi"})
        on_route = await client.post(f"/{route}/v1/responses", json={"input": "hi"})
    for response in (unified, on_route):
        assert response.status_code == 400
        error = envelope(response.json())
        assert (error["message"], error["type"], error["param"]) == (
            message,
            "invalid_request_error",
            "model",
        )
    assert recorder.loads == {} and recorder.served == []

"""Whether a started pooling engine serves its route's endpoint (llmhost.backends.vllm.pooling):
the reason a load fails, in vLLM's terms, from the task vLLM settled on."""

from __future__ import annotations

import pytest

from llmhost.backends.vllm.pooling import serving_problem
from llmhost.config import parse_catalog
from llmhost.config.text import models_toml


@pytest.mark.parametrize(
    ("kind", "task", "scoring", "labels", "expected"),
    [
        ("embedding", "embed", True, None, None),
        (
            "embedding",
            "classify",
            True,
            1,
            'serves no embeddings; it can rerank: serve it as kind = "rerank"',
        ),
        (
            "embedding",
            "token_classify",
            False,
            3,
            "as 'token_classify', not 'embed', so it serves no embeddings",
        ),
        ("rerank", "classify", True, 1, None),
        ("rerank", "embed", True, None, None),  # a bi-encoder: cosine similarity
        (
            "rerank",
            "classify",
            False,
            2,
            "its pooling task is 'classify' (a cross-encoder has one label; this one has 2)",
        ),
    ],
)
def test_the_load_fails_when_vllm_serves_no_such_endpoint(
    kind: str, task: str, scoring: bool, labels: int | None, expected: str | None
) -> None:
    route = parse_catalog(models_toml({}, {"r": {"kind": kind, "model": "org/m"}})).routes["r"]
    found = serving_problem(route, task, scoring, labels)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found and "org/m" in found

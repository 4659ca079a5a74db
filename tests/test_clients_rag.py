"""The clients' settings for the embedding and rerank routes models.toml ships commented
out: Continue's `embed` and `rerank` models, uncommented, are valid for Continue's own
config package and name those routes' served names; Open WebUI's RAG settings in
clients/open-webui.env name them too, at llmhost's endpoints."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.test_clients_continue import CONTINUE, KEY, SCRIPT, package
from tests.test_shipped_pooling import uncommented

__all__ = ["package"]  # Continue's @continuedev/config-yaml, installed once (a fixture)

REPO = Path(__file__).resolve().parents[1]


def continue_with_rag(tmp_path: Path) -> Path:
    """config.yaml with its commented-out embed and rerank models turned on."""
    text = (CONTINUE / "config.yaml").read_text()
    head, marker, tail = text.partition("  # Codebase retrieval")
    assert marker, "config.yaml no longer has the codebase retrieval models"
    models = [line.replace("  # ", "  ", 1) for line in tail.splitlines() if line.startswith("  # ")]
    start = next(i for i, line in enumerate(models) if line.startswith("  - name:"))
    path = tmp_path / "config.yaml"
    path.write_text(head + "\n".join(models[start:]) + "\n")
    return path


def served_names() -> dict[str, str]:
    from llmhost.config import parse_catalog

    catalog = parse_catalog(uncommented())
    return {name: route.kind for route in catalog.routes.values() for name in route.served_names}


def test_continue_embed_and_rerank_models_are_valid(package: Path, tmp_path: Path) -> None:
    script = package / "check-config.mjs"
    script.write_text(SCRIPT)
    config = continue_with_rag(tmp_path)
    result = subprocess.run(
        ["node", str(script), str(config), str(CONTINUE / "config.json"), KEY],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    view: dict[str, Any] = json.loads(result.stdout)
    assert view["problems"] == [], view["problems"]
    by_role = {role: m for m in view["config"]["models"] for role in m["roles"]}
    kinds = served_names()
    for role, kind in (("embed", "embedding"), ("rerank", "rerank")):
        model = by_role[role]
        assert model["provider"] == "vllm" and model["apiKey"] == KEY
        assert model["apiBase"] == "http://localhost:8000/openai/v1"
        assert kinds[model["model"]] == kind, model["model"]


def test_open_webui_rag_settings_name_the_routes() -> None:
    lines = (REPO / "clients" / "open-webui.env").read_text().splitlines()
    settings = dict(
        line[1:].split("=", 1) for line in lines if line.startswith("#RAG_") or line.startswith("#ENABLE_RAG")
    )
    kinds = served_names()
    assert settings["RAG_EMBEDDING_ENGINE"] == "openai"
    assert kinds[settings["RAG_EMBEDDING_MODEL"]] == "embedding"
    assert settings["RAG_OPENAI_API_BASE_URL"] == "http://127.0.0.1:8000/openai/v1"  # + /embeddings
    assert settings["RAG_RERANKING_ENGINE"] == "external"
    assert kinds[settings["RAG_RERANKING_MODEL"]] == "rerank"
    assert settings["RAG_EXTERNAL_RERANKER_URL"] == "http://127.0.0.1:8000/v1/rerank"  # posted to as is
    assert settings["ENABLE_RAG_HYBRID_SEARCH"] == "true"  # Open WebUI reranks only in hybrid search


@pytest.mark.parametrize("doc", ["clients/open-webui.md", "clients/continue/README.md"])
def test_the_docs_name_the_served_names(doc: str) -> None:
    text = (REPO / doc).read_text()
    pooling = [name for name, kind in served_names().items() if kind in ("embedding", "rerank")]
    assert len(pooling) == 2 and all(name in text for name in pooling)

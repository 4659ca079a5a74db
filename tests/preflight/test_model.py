"""Pre-flight checks: a model that cannot be found fails fast, before anything is evicted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llmhost.config import RouteConfig, parse_catalog
from llmhost.errors import ModelUnavailable
from llmhost.gpu.monitor import NullMonitor
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.state import ModelState
from llmhost.preflight.model import config_problems, problem, refuse_missing
from tests.fakes import Recorder, no_sleep_mode


def _route(model: str, kind: str = "llm") -> RouteConfig:
    return RouteConfig(name="r", kind=kind, model=model)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("/srv/llm/weights/does-not-exist", "the model path /srv/llm/weights/does-not-exist does not exist"),
        ("./nothing-here", "the model path ./nothing-here does not exist"),
        ("~/no/such/model", "the model path ~/no/such/model does not exist"),
        ("not a repo id", "is neither an existing directory nor a Hugging Face repo id"),
        ("org/name/extra", "is neither an existing directory nor a Hugging Face repo id"),
        ("org--name", "is neither an existing directory nor a Hugging Face repo id"),
    ],
)
def test_models_that_cannot_be_found(model: str, expected: str) -> None:
    found = problem(_route(model), offline_cache=False)
    assert found is not None and expected in found and "route 'r'" in found


def test_existing_directory_and_well_formed_ids_pass(tmp_path: Path) -> None:
    assert problem(_route(str(tmp_path)), offline_cache=False) is None
    assert problem(_route("Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"), offline_cache=False) is None
    assert problem(_route("gpt2"), offline_cache=False) is None
    file = tmp_path / "weights.bin"
    file.write_bytes(b"")
    assert "is not a directory" in (problem(_route(str(file)), offline_cache=False) or "")


def test_offline_and_not_cached_says_to_pull(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    found = problem(_route("Qwen/Qwen2.5-7B-Instruct-AWQ"))
    assert found is not None and "llmhost pull r" in found and "HF_HUB_OFFLINE" in found
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert problem(_route("Qwen/Qwen2.5-7B-Instruct-AWQ")) is None  # online: the loader fetches it


def test_offline_and_cached_passes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    snapshot = tmp_path / "models--org--name" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--org--name" / "refs").mkdir()
    (tmp_path / "models--org--name" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    assert problem(_route("org/name")) is None


def test_check_and_reload_refuse_a_missing_path() -> None:
    catalog = parse_catalog('[routes.chat]\nkind = "llm"\nmodel = "/srv/llm/weights/does-not-exist"\n')
    assert len(config_problems(catalog)) == 1
    with pytest.raises(Exception, match=r"models.toml: the model path .* does not exist \(route 'chat'\)\.$"):
        refuse_missing(catalog)


async def test_a_refused_load_evicts_nothing() -> None:
    """The model that was serving stays; the request for the missing one fails at once."""
    rec = Recorder()
    catalog = parse_catalog(
        '[routes.good]\nkind = "llm"\nmodel = "org/good"\n'
        '[routes.broken]\nkind = "llm"\nmodel = "/srv/llm/weights/does-not-exist"\n'
    )
    manager = ModelManager(
        catalog,
        rec.factory,
        NullMonitor("test"),
        preflight=lambda r: problem(r, offline_cache=False),
        standby_query=no_sleep_mode,
    )
    manager.start()
    async with manager.lease("good"):
        pass
    with pytest.raises(ModelUnavailable, match=r"failed to load: the model path .* does not exist") as caught:
        await asyncio.wait_for(manager.acquire("broken"), 5)
    assert ".." not in caught.value.message
    assert rec.events == ["load good"]  # nothing evicted, nothing loaded for it
    assert manager.route_state("good") is ModelState.READY
    assert manager.route_state("broken") is ModelState.FAILED
    await manager.close()

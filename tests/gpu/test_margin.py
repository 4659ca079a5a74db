"""The engine margin: configured, measured at each load (fake NVML), or the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmhost.config import HostConfig, RouteConfig
from llmhost.gpu.margin import DEFAULT_MARGIN_GIB, ROOM_BYTES, EngineMargins, margin_file
from llmhost.lifecycle.manager import ModelManager
from llmhost.settings import Settings
from llmhost.units import GIB
from tests.apphelp import make_app, running
from tests.fakes import FakeBackend, FakeGpu, Recorder, catalog, no_sleep_mode

GPU = "NVIDIA GeForce RTX 4080"


def _route(**engine: object) -> RouteConfig:
    return RouteConfig.model_validate(
        {"name": "coder", "kind": "llm", "model": "org/coder", "engine": engine}
    )


def _margins(tmp_path: Path, today: str = "2025-03-01") -> EngineMargins:
    return EngineMargins(tmp_path / "llmhost" / "engine-margin.json", today=lambda: today)


def test_default_has_room_over_a_measured_context() -> None:
    margin = EngineMargins().in_use(HostConfig(), GPU)
    assert (margin.source, margin.bytes) == ("default", int(DEFAULT_MARGIN_GIB * GIB))
    # The context measured on an RTX 4080 under WSL2 (0.73 GiB) leaves a quarter GiB.
    assert margin.bytes - 0.73 * GIB >= 0.25 * GIB
    assert "no load measured" in margin.detail


def test_a_configured_margin_wins_over_a_measured_one(tmp_path: Path) -> None:
    margins = _margins(tmp_path)
    margins.observe(_route(), GPU, measured_bytes=11 * GIB, budget_bytes=10 * GIB)
    margin = margins.in_use(HostConfig(engine_margin_gib=1.5), GPU)
    assert (margin.source, margin.bytes) == ("configured", int(1.5 * GIB))
    assert "engine_margin_gib" in margin.detail


def test_the_largest_overshoot_seen_sizes_the_next_loads_and_is_kept(tmp_path: Path) -> None:
    margins = _margins(tmp_path)
    assert margins.observe(_route(), GPU, measured_bytes=int(12.6 * GIB), budget_bytes=12 * GIB) is not None
    # A smaller overshoot later leaves the record as it is; a larger one replaces it.
    assert margins.observe(_route(), GPU, measured_bytes=int(12.4 * GIB), budget_bytes=12 * GIB) is None
    later = _margins(tmp_path, today="2025-03-02")
    assert later.measured(GPU) is not None  # read back from the file
    record = later.observe(_route(), GPU, measured_bytes=int(12.7 * GIB), budget_bytes=12 * GIB)
    assert record is not None and record.date == "2025-03-02"
    margin = _margins(tmp_path).in_use(HostConfig(), GPU)
    assert margin.source == "measured"
    assert margin.bytes == pytest.approx(0.7 * GIB + ROOM_BYTES, abs=0.01 * GIB)
    assert "measured on 2025-03-02" in margin.detail and "0.70 GiB beyond its budget" in margin.detail
    # Another card on the same machine starts from the default.
    assert _margins(tmp_path).in_use(HostConfig(), "NVIDIA GeForce RTX 3090").source == "default"


@pytest.mark.parametrize(
    ("route", "gpu", "measured", "budget"),
    [
        (_route(kv_cache_memory_bytes=GIB), GPU, 12 * GIB, 10 * GIB),  # vLLM ignores the budget
        (_route(), GPU, 9 * GIB, 10 * GIB),  # took less than its budget: not an overshoot
        (_route(), GPU, 20 * GIB, 10 * GIB),  # another program moved meanwhile
        (_route(), None, 11 * GIB, 10 * GIB),  # no NVML
        (_route(), GPU, 11 * GIB, None),  # the user's gpu_memory_utilization: no budget of ours
    ],
)
def test_readings_that_are_not_an_engines_overshoot_are_not_recorded(
    tmp_path: Path, route: RouteConfig, gpu: str | None, measured: int, budget: int | None
) -> None:
    margins = _margins(tmp_path)
    assert margins.observe(route, gpu, measured_bytes=measured, budget_bytes=budget) is None
    assert margins.in_use(HostConfig(), gpu).source == "default"
    assert not margins.file or not margins.file.exists()


def test_a_broken_file_is_measured_anew(tmp_path: Path) -> None:
    margins = _margins(tmp_path)
    assert margins.file is not None
    margins.file.parent.mkdir(parents=True)
    margins.file.write_text("{not json")
    assert _margins(tmp_path).in_use(HostConfig(), GPU).source == "default"


def test_the_file_lives_with_the_hosts_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def where(hf_home: Path) -> Path:
        return margin_file(Settings(_env_file=None, hf_home=hf_home).weights_cache())

    assert where(tmp_path / "srv") == tmp_path / "srv" / "llmhost" / "engine-margin.json"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "env"))  # as `serve` exported it
    assert where(tmp_path / "srv") == tmp_path / "env" / "llmhost" / "engine-margin.json"
    monkeypatch.delenv("HF_HOME")
    # A service cache that cannot be made (here: below a plain file): the cache `serve`
    # falls back to, Hugging Face's default under XDG_CACHE_HOME.
    (tmp_path / "plain").write_text("")
    fallback = tmp_path / "xdg" / "huggingface" / "llmhost" / "engine-margin.json"
    assert where(tmp_path / "plain" / ".cache") == fallback


class _Budgets(Recorder):
    """Records the budget each engine was given (its gpu_memory_utilization of the card)."""

    def factory(self, route: RouteConfig, host: HostConfig) -> FakeBackend:
        assert self.gpu is not None
        self.budgets.append(float(route.engine["gpu_memory_utilization"]) * self.gpu.total_bytes)
        return super().factory(route, host)

    budgets: list[float]


async def test_each_load_is_measured_and_the_next_one_sized_by_it(tmp_path: Path) -> None:
    gpu = FakeGpu(total_bytes=16 * GIB, used={"desktop": int(1.5 * GIB)}, name=GPU)
    rec = _Budgets(gpu=gpu)
    rec.budgets = []
    rec.beyond_budget = int(0.6 * GIB)  # each engine's CUDA context, beyond its budget
    margins = _margins(tmp_path)
    manager = ModelManager(
        catalog(engine_margin_gib=None), rec.factory, gpu, margins=margins, standby_query=no_sleep_mode
    )
    manager.start()
    async with manager.lease("a"):
        pass
    async with manager.lease("b"):  # a swaps out; b is sized with the margin a's load measured
        pass
    free = 14.5 * GIB
    first, second = rec.budgets
    assert first == pytest.approx(free - DEFAULT_MARGIN_GIB * GIB, abs=GIB / 1000)
    assert second == pytest.approx(free - 0.6 * GIB - ROOM_BYTES, abs=0.011 * GIB)
    assert margins.stats(manager.host, GPU)["source"] == "measured"
    await manager.close()


async def test_stats_shows_the_margin_in_use_and_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    rec = Recorder(gpu=FakeGpu(total_bytes=16 * GIB, name=GPU))
    rec.beyond_budget = int(0.8 * GIB)
    app = make_app(catalog(engine_margin_gib=None), factory=rec.factory, gpu=rec.gpu)
    async with running(app) as client:
        before = (await client.get("/stats")).json()["engine_margin"]
        assert before["source"] == "default" and before["measured_on"] is None
        async with app.state.host.manager.lease("a"):  # a load, as a request makes it
            pass
        after = (await client.get("/stats")).json()["engine_margin"]
    assert after["source"] == "measured"
    assert abs(after["measured_beyond_budget_bytes"] - 0.8 * GIB) < GIB / 1000
    assert after["measured_on"] is not None and after["measured_on"] in after["detail"]
    saved = json.loads((tmp_path / "llmhost" / "engine-margin.json").read_text())
    assert saved["gpus"][GPU]["route"] == "a"

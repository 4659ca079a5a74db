"""`llmhost status` against a live host (fake backend) and an absent one."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from llmhost.cli import main
from llmhost.units import GIB
from tests import catalogs
from tests.apphelp import ServerThread, make_app
from tests.fakes import Recorder
from tests.hostproc import wait_until

CATALOG = catalogs.catalog(catalogs.CODER_AND_CHAT, prewarm=["coder"])


def test_status_prints_the_routes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "k3y")
    rec = Recorder()
    with ServerThread(make_app(CATALOG, api_key="k3y", factory=rec.factory)) as server:
        manager = server.app.state.host.manager
        assert wait_until(lambda: manager.route_state("coder").value == "ready", 5)  # prewarmed
        assert main(["status", "--url", server.url]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ROUTE", "MODEL", "STATE"]
    coder = next(line for line in lines if line.startswith("coder "))
    assert "coder-fast" in coder and "ready" in coder
    chat = next(line for line in lines if line.startswith("chat "))
    assert "stopped" in chat and "never" in chat
    assert "GPU: not watched" in out


def test_status_exits_non_zero_when_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 1
    assert "no llmhost answering" in capsys.readouterr().err


def test_status_says_when_the_key_is_wrong(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "wrong")
    with ServerThread(make_app(CATALOG, api_key="right", factory=Recorder().factory)) as server:
        assert main(["status", "--url", server.url]) == 1
    assert "refused the key" in capsys.readouterr().err


def _model(route: str, state: str, **extra: object) -> dict[str, object]:
    return {
        "route": route,
        "model": f"{route}-model",
        "state": state,
        "loading_seconds": None,
        "memory_bytes": None,
        "last_hit": None,
        "loads": 0,
        "cold_start_seconds": {"last": None},
        "in_flight": 0,
        "waiting": 0,
    } | extra


def test_columns_stay_in_place_while_states_change() -> None:
    from llmhost.cli.status import HEADER, render
    from llmhost.units import GIB

    def table(*models: dict[str, object]) -> list[str]:
        stats = {"models": list(models), "gpu": {"available": False, "reason": "test"}}
        return render(stats | {"policy": "exclusive", "uptime_seconds": 5}).splitlines()[: len(models) + 1]

    quiet = table(_model("coder", "ready"), _model("chat", "stopped"))
    busy = table(
        _model("coder", "unloading", memory_bytes=int(12.3 * GIB), cold_start_seconds={"last": 95.25}),
        _model("chat", "loading", loading_seconds=3.2, waiting=2),
    )
    assert "loading 3s" in busy[2]
    # A refresh (`watch llmhost status`) keeps every column where it was...
    assert quiet[0] == busy[0]
    starts = [busy[0].index(title) for title in HEADER]
    for line in [*quiet[1:], *busy[1:]]:
        # ...and every row's cells start under their titles, "loading 3s" included.
        for start in starts[1:]:
            assert line[start - 2 : start] == "  " and line[start] != " ", (line, start)
    assert busy[2][starts[HEADER.index("WAITING")] :] == "2"
    slow = table(_model("chat", "loading", loading_seconds=1234.0))  # wider than usual: still aligned
    assert slow[1][slow[0].index("MEMORY") - 2 : slow[0].index("MEMORY")] == "  "


async def test_status_and_metrics_show_an_asleep_model() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from llmhost.cli.status import render
    from llmhost.lifecycle.manager import ModelManager
    from llmhost.server.metrics import render_metrics
    from tests.fakes import FakeGpu, catalog

    gpu_memory = FakeGpu()
    rec = Recorder(gpu=gpu_memory)
    standby = catalog(routes=("coder", "chat"), every_route={"standby": "sleep"})
    manager = ModelManager(standby, rec.factory, gpu_memory, standby_query=lambda: None)
    manager.start()
    for route in ("coder", "chat", "coder", "chat"):
        async with manager.lease(route):
            pass
    models = manager.snapshot()
    await manager.close()
    stats = {m["route"]: m for m in models}
    coder = stats["coder"]
    assert coder["state"] == "asleep" and coder["standby"] == "on" and coder["sleep_level"] == 1
    assert coder["standby_ram_bytes"] == 2 * GIB and coder["sleeps"] == 2 and coder["wakes"] == 1
    assert coder["wake_seconds"]["last"] is not None and coder["wake_failures"] == 0

    gpu = {"available": False, "reason": "test"}
    table = render({"models": models, "gpu": gpu, "policy": "exclusive", "uptime_seconds": 5})
    row = next(line for line in table.splitlines() if line.startswith("coder "))
    assert "asleep" in row and "L1 2.0G RAM wake" in row

    body, _ = render_metrics(models, gpu)
    samples = {
        (s.name, s.labels.get("route"), s.labels.get("state") or s.labels.get("standby")): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("llmhost_model_state", "coder", "asleep")] == 1
    assert samples[("llmhost_model_standby", "coder", "on")] == 1
    assert samples[("llmhost_model_sleeps_total", "coder", None)] == 2
    assert samples[("llmhost_model_wakes_total", "chat", None)] == 1
    assert samples[("llmhost_model_wake_seconds_count", "coder", None)] == 1
    assert samples[("llmhost_model_standby_ram_bytes", "coder", None)] == 2 * GIB
    assert samples[("llmhost_model_wake_failures_total", "coder", None)] == 0


# Central Europe and Sydney, as POSIX rules (no tzdata needed): on any date one of them is
# in summer time.
SUMMER_ZONES = ("CET-1CEST,M3.5.0,M10.5.0/3", "AEST-10AEDT,M10.1.0,M4.1.0/3")


@pytest.fixture
def summer_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is a zone in summer time today: one hour ahead of its standard time."""
    for zone in SUMMER_ZONES:
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        if time.localtime().tm_isdst == 1:
            break
    yield
    monkeypatch.undo()
    time.tzset()


def test_last_hit_is_right_in_summer_time(summer_time: None) -> None:
    from llmhost.cli.status import render

    assert time.localtime().tm_isdst == 1 and time.altzone == time.timezone - 3600  # in summer time
    half_a_minute_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30))
    model = _model("coder", "ready", last_hit=half_a_minute_ago)
    table = render({"models": [model], "gpu": {"available": False, "reason": "test"}} | UP)
    row = next(line for line in table.splitlines() if line.startswith("coder "))
    assert re.search(r"  3[01]s ago  ", row), row  # not an hour off ("0s ago" or "60m ago")


UP = {"policy": "exclusive", "uptime_seconds": 5}

"""`llmhost check` and the safety checks of `llmhost serve`."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmhost.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_check_prints_the_route_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(REPO / "models.toml")]) == 0
    out = capsys.readouterr().out
    for route in ("coder", "chat", "general", "coderslow", "agent", "vision"):
        assert f"\n{route} " in out
    assert "coder-fast" in out and "vision-diffusion" in out and "600s" in out


def test_check_fails_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "models.toml"
    bad.write_text("[routes.coder]\nkind = 'llm'\nmodel = 'x'\n[routes.coder.engine]\nwarp_speed = 9\n")
    assert main(["check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "warp_speed" in err and str(bad) in err and "Traceback" not in err


def test_serve_refuses_lan_without_key(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--config", str(REPO / "models.toml"), "--host", "0.0.0.0"])
    assert code == 2
    assert "VLLM_API_KEY" in capsys.readouterr().err


def test_demo_config_mirrors_the_shipped_routes(tiny_models: object) -> None:
    from llmhost.config import load_catalog, parse_catalog
    from llmhost.demo import demo_config_text

    shipped = load_catalog(REPO / "models.toml")
    demo = parse_catalog(demo_config_text(tiny_models))  # type: ignore[arg-type]
    assert list(demo.routes) == list(shipped.routes)
    for name, route in shipped.routes.items():
        assert demo.routes[name].served_names == route.served_names, name
        assert demo.routes[name].kind == route.kind
        assert demo.routes[name].serving == route.serving, name
    assert len({r.model for r in demo.routes.values() if r.kind == "llm"}) >= 2  # swaps show

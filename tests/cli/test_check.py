"""`llmhost check` and the safety checks of `llmhost serve`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmhost import estimate
from llmhost.cli import main
from llmhost.estimate import estimate_route, verdict
from llmhost.units import GIB
from tests.estimate.support import DSV2, awq_dir

REPO = Path(__file__).resolve().parents[2]


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


def test_check_says_whether_standby_is_available_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "models.toml"
    config.write_text(
        "[host]\nstandby_ram_gib = 12\n"
        "[routes.coder]\nkind = 'llm'\nmodel = 'org/coder'\nstandby = 'sleep'\n"
        "[routes.chat]\nkind = 'llm'\nmodel = 'org/chat'\nstandby = 'sleep'\nsleep_level = 2\n"
        "[routes.agent]\nkind = 'llm'\nmodel = 'org/agent'\n"
    )
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    # This machine runs vLLM's CPU build: vLLM itself says it has no sleep mode here.
    line = next(x for x in out.splitlines() if x.startswith("Standby"))
    assert "coder (level 1), chat (level 2): unavailable" in line and "cpu platform" in line
    assert "swap by shutdown" in line and "agent" not in line
    assert re.search(r"\[host\] standby_ram_gib\s+12\s+\S*models.toml", out)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("kind = 'diffusion'\nmodel = 'org/sd'\nstandby = 'sleep'", 'standby = "sleep" is for llm routes'),
        ("kind = 'llm'\nmodel = 'org/x'\nsleep_level = 3", "sleep_level"),
        ("kind = 'llm'\nmodel = 'org/x'\nstandby = 'yes'", "standby"),
        (
            "kind = 'llm'\nmodel = 'org/x'\n[routes.r.engine]\nenable_sleep_mode = true",
            'standby = "sleep" turns it on',
        ),
    ],
)
def test_check_refuses_bad_standby_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, message: str
) -> None:
    config = tmp_path / "models.toml"
    config.write_text(f"[routes.r]\n{table}\n")
    assert main(["check", "--config", str(config)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "flags"),
    [({"LLMHOST_HOST": "0.0.0.0"}, []), ({}, ["--host", "192.168.1.20"]), ({"LLMHOST_HOST": "::"}, [])],
)
def test_check_refuses_what_serve_refuses_with_the_same_message(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    flags: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env with a key
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.delenv("LLMHOST_HOST", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = ["--config", str(REPO / "models.toml")]
    assert main(["check", *config, *flags]) == 2
    refused = capsys.readouterr()
    assert main(["serve", *config, *flags]) == 2
    assert capsys.readouterr().err == refused.err
    assert "without an API key" in refused.err and "VLLM_API_KEY" in refused.err
    assert "ROUTE" not in refused.out  # refused before the report
    # ...and what serve accepts, check accepts: a key, or --allow-no-key.
    assert main(["check", *config, *flags, "--allow-no-key"]) == 0
    monkeypatch.setenv("VLLM_API_KEY", "k")
    assert main(["check", *config, *flags]) == 0


# ---- llmhost check --gpu-memory -----------------------------------------------------------


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    awq = awq_dir(tmp_path)
    path = tmp_path / "models.toml"
    path.write_text(
        f"""
[host]
policy = "fit"
[routes.coder]
kind = "llm"
model = "{awq}"
served_names = ["coder-awq"]
[routes.coder.engine]
max_model_len = 8192
[routes.agent]
kind = "llm"
model = "{awq}"
served_names = ["agent-awq"]
[routes.agent.engine]
max_model_len = 4096
enforce_eager = true
[routes.coderslow]
kind = "llm"
model = "{DSV2}"
[routes.coderslow.engine]
max_model_len = 4096
[routes.chat]
kind = "llm"
model = "meta-llama/Llama-3.1-8B-Instruct"
"""
    )
    return path


def line_of(out: str, name: str) -> str:
    """The route's row in the fit table (the route table above it starts with names too)."""
    fit = out[out.index("Fit estimate for") :]
    return next(line for line in fit.splitlines() if line.split()[:1] == [name])


def test_check_gpu_memory_prints_a_verdict_per_route(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmhost.config import load_catalog

    assert main(["check", "--config", str(table), "--gpu-memory", "16"]) == 0
    out = capsys.readouterr().out
    assert "Fit estimate for 16.00 GiB (--gpu-memory)" in out
    routes = load_catalog(table).routes
    for name in ("coder", "agent", "coderslow"):
        est = estimate_route(routes[name])
        line = line_of(out, name)
        assert est.need_bytes is not None
        assert f"{est.need_bytes / GIB:.2f} GiB" in line and line.endswith(verdict(est.need_bytes, 16 * GIB))
    assert line_of(out, "coder").endswith("fits") and line_of(out, "coderslow").endswith("does not fit")
    assert "(8192 tok)" in line_of(out, "coder")
    assert line_of(out, "chat").endswith("unknown: not in the cache")
    assert out.count("Not in the cache: chat. `llmhost pull` fetches them") == 1  # one hint, not per row
    # Two AWQ engines need more than 90% of 16 GiB together; on 24 GiB they stay side by side.
    assert "no two routes fit side by side" in out
    assert main(["check", "--config", str(table), "--gpu-memory", "24"]) == 0
    assert "  coder + agent: " in capsys.readouterr().out


def test_check_uses_the_gpu_nvml_sees(
    table: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(estimate, "detected_gpu_bytes", lambda: (None, "NVML is unavailable (no driver)"))
    assert main(["check", "--config", str(table)]) == 0
    out = capsys.readouterr().out
    assert "No fit estimate: no GPU seen (NVML is unavailable (no driver)); pass --gpu-memory GIB" in out
    assert "VERDICT" not in out
    monkeypatch.setattr(
        estimate, "detected_gpu_bytes", lambda: (int(15.99 * GIB), "NVIDIA GeForce RTX 4080 (NVML)")
    )
    assert main(["check", "--config", str(table)]) == 0
    out = capsys.readouterr().out
    assert "Fit estimate for 15.99 GiB (NVIDIA GeForce RTX 4080 (NVML))" in out
    assert line_of(out, "coder").endswith("fits")


def test_check_refuses_a_gpu_size_of_zero(table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(table), "--gpu-memory", "0"]) == 2
    assert "--gpu-memory is the GPU's size in GiB" in capsys.readouterr().err

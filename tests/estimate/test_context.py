"""`llmhost check --gpu-memory` says in advance which contexts vLLM would refuse, and what the
host's retry would fit them to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmhost.cli import main
from llmhost.config.text import models_toml
from llmhost.estimate import RouteEstimate
from llmhost.estimate.context import fitted_context, report
from llmhost.units import GIB

# A Qwen2.5-7B at 16k: 57,344 bytes of KV per token, one sequence in 16-token blocks
# plus the null block.
PER_TOKEN = 57_344
KV_16K = (16384 // 16 + 1) * 16 * PER_TOKEN


def _estimate(weights_gib: float, tokens: int = 16384) -> RouteEstimate:
    return RouteEstimate(int(weights_gib * GIB), KV_16K, 2 * GIB, max_model_len=tokens)


def test_a_context_that_fits_is_left_alone() -> None:
    assert fitted_context(_estimate(8.0), 16 * GIB) is None  # need 10.9 GiB of 14.4


def test_a_context_that_does_not_fit_is_fitted_to_the_rest() -> None:
    # 12 GiB of weights and 2 of overhead leave 0.4 GiB of the 14.4 counted (90% of 16)
    # for a KV cache that needs 0.88 GiB at 16k tokens.
    estimate = _estimate(12.0)
    fitted = fitted_context(estimate, 16 * GIB)
    rest = 0.9 * 16 * GIB - 14.0 * GIB
    assert fitted is not None and fitted % 16 == 0
    assert fitted == pytest.approx(rest / PER_TOKEN * 0.98, rel=0.01)
    assert fitted < 16384


def test_no_room_at_all_is_said_as_such() -> None:
    assert fitted_context(_estimate(13.0), 16 * GIB) == 0
    text = report({"coder": _estimate(13.0), "chat": _estimate(8.0)}, 16 * GIB)
    assert text is not None and "coder: max_model_len 16384: no KV cache fits beside the weights" in text
    assert "chat" not in text


def test_unknown_estimates_say_nothing() -> None:
    assert fitted_context(RouteEstimate(None, None, None, "not in the cache"), 16 * GIB) is None
    assert report({"coder": RouteEstimate(None, None, None, "not in the cache")}, 16 * GIB) is None


def test_check_names_the_routes_fitted_down(
    tiny_models: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The tiny model's estimate: 1.09 GiB, 16 MiB of it a 32k context. On a 1.2 GiB card
    # (1.08 GiB counted) about 10 MiB is left for its KV cache: about 19k tokens.
    config = tmp_path / "models.toml"
    route = {
        "kind": "llm",
        "model": str(tiny_models.llm),
        "engine": {"max_model_len": 32768, "dtype": "float32"},
    }
    config.write_text(models_toml({}, {"coder": route}))
    assert main(["check", "--config", str(config), "--gpu-memory", "1.2"]) == 0
    out = capsys.readouterr().out
    assert "Contexts fitted down on 1.20 GiB" in out
    line = next(
        line for line in out.splitlines() if line.startswith("  coder: max_model_len 32768 -> about ")
    )
    tokens = int(line.rsplit("about ", 1)[1].split()[0].replace(",", ""))
    assert 15_000 < tokens < 25_000
    assert main(["check", "--config", str(config), "--gpu-memory", "2"]) == 0
    assert "Contexts fitted down" not in capsys.readouterr().out

"""`llmhost check` refuses resident routes that leave another route no room on the GPU
(llmhost.estimate.resident): the arithmetic, then the command on the tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmhost.cli import main
from llmhost.config import RouteConfig
from llmhost.config.text import models_toml
from llmhost.estimate import RouteEstimate, estimate_route
from llmhost.estimate.figures import CUDA_CONTEXT_BYTES
from llmhost.estimate.resident import room_for_others, route_need
from llmhost.units import GIB

CONTEXT_GIB = CUDA_CONTEXT_BYTES / GIB


def route(name: str, kind: str = "llm", **fields: Any) -> RouteConfig:
    return RouteConfig.model_validate({"name": name, "kind": kind, "model": f"org/{name}", **fields})


def need(gib: float) -> RouteEstimate:
    """An estimate whose need is `gib` (all of it weights, for simplicity)."""
    return RouteEstimate(int(gib * GIB), 0, 0)


@pytest.mark.parametrize(
    ("r", "estimate", "expected_gib", "how"),
    [
        (route("e", memory_gib=1.5), need(9), 1.5 + CONTEXT_GIB, "memory_gib 1.5 + 0.50 GiB CUDA context"),
        (route("v", "diffusion", memory_gib=3.0), need(9), 3.0, "memory_gib 3"),
        (
            route("u", engine={"gpu_memory_utilization": 0.25}),
            None,
            4.0 + CONTEXT_GIB,
            "gpu_memory_utilization 0.25 + 0.50 GiB CUDA context",
        ),
        (route("a"), need(2.5), 2.5, "estimate"),
        (route("x"), RouteEstimate(None, None, None, "not in the cache"), None, "not in the cache"),
    ],
)
def test_route_need(
    r: RouteConfig, estimate: RouteEstimate | None, expected_gib: float | None, how: str
) -> None:
    found = route_need(r, estimate, 16 * GIB)
    assert found.how == how
    assert found.bytes == (None if expected_gib is None else int(expected_gib * GIB))


def test_no_resident_route_no_report() -> None:
    assert room_for_others([route("a"), route("b")], {"a": need(9), "b": need(9)}, 16 * GIB, "x") is None


def test_residents_that_leave_room_are_listed_with_the_rest() -> None:
    routes = [route("e", resident=True), route("r", "rerank", resident=True), route("chat")]
    report = room_for_others(
        routes, {"e": need(1.25), "r": need(1.5), "chat": need(9)}, 16 * GIB, "--gpu-memory"
    )
    assert report is not None and report.refusal is None
    assert report.lines == [
        "Resident routes (loaded at start, never evicted for another route): e 1.25 GiB (estimate) + "
        "r 1.50 GiB (estimate) = 2.75 GiB of 16.00 GiB (--gpu-memory); 13.25 GiB left for the others."
    ]


def test_a_route_with_no_room_beside_the_residents_is_refused_with_the_numbers() -> None:
    routes = [route("e", resident=True, memory_gib=2.5), route("chat"), route("small"), route("big")]
    estimates = {"chat": need(13.5), "small": need(4), "big": need(14)}
    report = room_for_others(routes, estimates, 16 * GIB, "NVIDIA GeForce RTX 4080 (NVML)")
    assert report is not None
    assert report.refusal == (
        "the resident routes (e) take 3.00 GiB of the 16.00 GiB (NVIDIA GeForce RTX 4080 (NVML)) GPU, "
        "leaving 13.00 GiB; chat needs 13.50 GiB (estimate); big needs 14.00 GiB (estimate): they could "
        "never load beside them. Make fewer routes resident, give them less memory_gib, or give the "
        "others less (memory_gib, max_model_len)."
    )


def test_residents_larger_than_the_card_are_refused() -> None:
    routes = [route("e", resident=True), route("r", resident=True)]
    report = room_for_others(routes, {"e": need(10), "r": need(8)}, 16 * GIB, "--gpu-memory")
    assert report is not None and report.refusal is not None
    assert report.refusal.startswith(
        "the resident routes (e, r) need 18.00 GiB together, more than the 16.00 GiB"
    )


def test_unknown_needs_are_said_and_not_counted() -> None:
    routes = [route("e", resident=True), route("r", resident=True), route("chat")]
    estimates = {
        "e": RouteEstimate(None, None, None, "not in the cache"),
        "r": need(2),
        "chat": RouteEstimate(None, None, None, "not in the cache"),
    }
    report = room_for_others(routes, estimates, 16 * GIB, "--gpu-memory")
    assert report is not None and report.refusal is None
    assert report.lines[1:] == [
        "  e: need unknown (not in the cache), not counted; set memory_gib on it for this check",
        "  chat: need unknown (not in the cache), not checked against what is left",
    ]


# ---- the command, on the tiny models -------------------------------------------------------


def test_check_refuses_residents_that_leave_a_route_no_room(
    tiny_models: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "models.toml"
    engine = {"max_model_len": 32768, "dtype": "float32"}
    routes: dict[str, dict[str, Any]] = {
        "embed": {
            "kind": "llm",
            "model": str(tiny_models.llm),
            "resident": True,
            "memory_gib": 1.5,
            "engine": engine,
        },
        "chat": {"kind": "llm", "model": str(tiny_models.llm_alt), "engine": engine},
    }
    config.write_text(models_toml({}, routes))
    chat_need = estimate_route(RouteConfig.model_validate({"name": "chat", **routes["chat"]})).need_bytes
    assert chat_need is not None and 1.0 * GIB < chat_need < 2.0 * GIB  # the tiny model's overhead
    # embed holds 1.5 GiB + its CUDA context (0.5): on 3 GiB, 1 GiB is left; chat needs more.
    assert main(["check", "--config", str(config), "--gpu-memory", "3"]) == 2
    captured = capsys.readouterr()
    assert (
        "embed 2.00 GiB (memory_gib 1.5 + 0.50 GiB CUDA context) = 2.00 GiB of 3.00 GiB (--gpu-memory)"
        in captured.out
    )
    assert "embed  llm   key   never (resident)" in captured.out  # the route table says so too
    assert (
        f"the resident routes (embed) take 2.00 GiB of the 3.00 GiB (--gpu-memory) GPU, leaving 1.00 GiB; "
        f"chat needs {chat_need / GIB:.2f} GiB (estimate): it could never load beside them." in captured.err
    )
    # On 4 GiB it has room: the check passes and says what is left.
    assert main(["check", "--config", str(config), "--gpu-memory", "4"]) == 0
    assert "= 2.00 GiB of 4.00 GiB (--gpu-memory); 2.00 GiB left for the others." in capsys.readouterr().out

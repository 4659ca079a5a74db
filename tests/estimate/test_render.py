"""The fit table `llmhost check` prints (llmhost.estimate.render), from estimates made by
hand: a row and verdict per route, one pull hint for the routes not in the cache, and the
groups that could stay resident together."""

from __future__ import annotations

from llmhost.estimate import RouteEstimate
from llmhost.estimate.render import not_cached, render
from llmhost.units import GIB

CARD = 16 * GIB
SMALL = RouteEstimate(4 * GIB, GIB, GIB, max_model_len=8192, precision="int4 (AWQ)")
LARGE = RouteEstimate(15 * GIB, GIB, GIB, max_model_len=4096, precision="bf16")
MISSING = RouteEstimate(None, None, None, "not in the cache: llmhost pull chat (or check --online)")
FROM_HUB = RouteEstimate(5 * GIB, GIB, GIB, source="the Hugging Face Hub (org/m)")


def row(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.split()[:1] == [name])


def test_a_row_per_route_with_its_figures_and_verdict() -> None:
    text = render({"coder": SMALL, "big": LARGE}, CARD, "RTX 4080 (NVML)", "fit")
    first, header = text.splitlines()[:2]
    assert first.startswith("Fit estimate for 16.00 GiB (RTX 4080 (NVML)); fits: need <= 90% of it")
    assert header.split() == ["ROUTE", "PRECISION", "WEIGHTS", "KV", "CACHE", "OVERHEAD", "NEED", "VERDICT"]
    coder = row(text, "coder")
    assert "int4 (AWQ)" in coder and "1.00 GiB (8192 tok)" in coder and "6.00 GiB" in coder
    assert coder.endswith("fits")
    assert row(text, "big").endswith("does not fit")
    assert "Not in the cache" not in text  # every route's weights were found


def test_routes_not_in_the_cache_share_one_hint() -> None:
    other = RouteEstimate(None, None, None, "not in the cache: llmhost pull other (or check --online)")
    estimates = {"coder": SMALL, "chat": MISSING, "other": other}
    assert not_cached(estimates) == ["chat", "other"]
    text = render(estimates, CARD, "--gpu-memory", "exclusive")
    assert row(text, "chat").endswith("unknown: not in the cache")
    assert text.count("Not in the cache: chat, other. `llmhost pull` fetches them") == 1
    assert "HF_HUB_OFFLINE" not in text


def test_offline_routes_are_told_to_unset_hf_hub_offline() -> None:
    offline = RouteEstimate(None, None, None, "not in the cache and HF_HUB_OFFLINE is set: llmhost pull chat")
    text = render({"chat": offline}, CARD, "--gpu-memory", "fit")
    assert text.splitlines()[-2].endswith("HF_HUB_OFFLINE is set: unset it for either.")


def test_figures_from_the_hub_give_the_download_size() -> None:
    estimates = {"coder": FROM_HUB}
    assert not_cached(estimates) == ["coder"]
    text = render(estimates, CARD, "--gpu-memory", "fit", download_bytes=5_500_000_000)
    assert row(text, "coder").endswith("fits")  # known figures: a verdict, not "unknown"
    assert "Not in the cache (figures from the Hub's metadata): coder. `llmhost pull` downloads" in text


def test_the_groups_that_fit_together_under_policy_fit() -> None:
    text = render({"a": SMALL, "b": SMALL, "big": LARGE}, CARD, "--gpu-memory", "exclusive")
    assert 'Can stay resident together under policy "fit" (this file: "exclusive"):' in text
    assert text.endswith("  a + b: 12.00 GiB")
    alone = render({"a": SMALL, "big": LARGE}, CARD, "--gpu-memory", "fit")
    assert alone.endswith('Can stay resident together under policy "fit": no two routes fit side by side.')

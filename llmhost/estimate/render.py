"""The table `llmhost check` prints, and the GPU it is printed for."""

from __future__ import annotations

from collections.abc import Mapping

from llmhost.estimate.figures import TIGHT_FRACTION
from llmhost.estimate.result import RouteEstimate, resident_together, verdict
from llmhost.units import GIB


def detected_gpu_bytes() -> tuple[int | None, str]:
    """Total memory of the GPU NVML sees, and a phrase naming it (or saying why none)."""
    from llmhost.gpu.monitor import quiet_monitor

    with quiet_monitor() as monitor:
        reading = monitor.memory()
        if reading is None:
            return None, monitor.unavailable_reason or "NVML gave no memory reading"
        return reading.total_bytes, f"{monitor.name or 'GPU'} (NVML)"


def render(
    estimates: Mapping[str, RouteEstimate],
    gpu_bytes: int,
    gpu_label: str,
    policy: str,
    download_bytes: int | None = None,
) -> str:
    """The table `llmhost check` prints, one verdict per route; `download_bytes` is what
    `llmhost pull` would fetch for the routes not in the cache, when known (--online)."""
    missing = not_cached(estimates)
    rows = [("ROUTE", "PRECISION", "WEIGHTS", "KV CACHE", "OVERHEAD", "NEED", "VERDICT")]
    for name, est in estimates.items():
        kv = _gib(est.kv_cache_bytes)
        if est.kv_cache_bytes is not None and est.max_model_len:
            kv += f" ({est.max_model_len} tok)"
        word: str = verdict(est.need_bytes, gpu_bytes)
        if word == "unknown":
            reason = "not in the cache" if name in missing else est.unknown_reason or "weights unknown"
            word = f"unknown: {reason}"
        precision = est.precision or "-"
        rows.append(
            (
                name,
                precision,
                _gib(est.weights_bytes),
                kv,
                _gib(est.overhead_bytes),
                _gib(est.need_bytes),
                word,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        f"Fit estimate for {gpu_bytes / GIB:.2f} GiB ({gpu_label}); fits: need <= "
        f"{TIGHT_FRACTION:.0%} of it, tight: up to all of it. KV cache: one sequence of max_model_len.",
        *(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
            for row in rows
        ),
    ]
    if missing:  # one hint for them all, not one per row
        offline = any("HF_HUB_OFFLINE" in (estimates[n].unknown_reason or "") for n in missing)
        lines.append(_pull_hint(missing, download_bytes, offline))
    # Which routes could stay loaded side by side: what policy "fit" does; under "exclusive"
    # it says what switching the policy would buy (one engine process each, so each need
    # counts its own CUDA context).
    label = 'under policy "fit"' + ("" if policy == "fit" else f' (this file: "{policy}")')
    groups = resident_together({n: e.need_bytes for n, e in estimates.items()}, gpu_bytes)
    if groups:
        lines.append(f"Can stay resident together {label}:")
        for group in groups:
            total = sum(estimates[n].need_bytes or 0 for n in group)
            lines.append(f"  {' + '.join(group)}: {total / GIB:.2f} GiB")
    else:
        lines.append(f"Can stay resident together {label}: no two routes fit side by side.")
    return "\n".join(lines)


def not_cached(estimates: Mapping[str, RouteEstimate]) -> list[str]:
    """The routes whose weights are not in the cache: their reason is to `llmhost pull`
    them, or (check --online) their figures were read from the Hub instead."""
    return [
        name
        for name, est in estimates.items()
        if f"llmhost pull {name}" in (est.unknown_reason or "")
        or (est.source or "").startswith("the Hugging Face Hub")
    ]


def _pull_hint(names: list[str], download_bytes: int | None, offline: bool) -> str:
    from llmhost.pull import human_size

    listed = ", ".join(names)
    if download_bytes is not None:
        return (
            f"Not in the cache (figures from the Hub's metadata): {listed}. "
            f"`llmhost pull` downloads {human_size(download_bytes)} for them."
        )
    hint = (
        f"Not in the cache: {listed}. `llmhost pull` fetches them (`llmhost pull --dry-run` "
        "prints the download size), or `llmhost check --online` estimates them from the "
        "Hub's metadata, with the download size."
    )
    return hint + (" HF_HUB_OFFLINE is set: unset it for either." if offline else "")


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.2f} GiB"

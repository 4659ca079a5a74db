"""Results: one row per metric (llmhost, the baseline, their ratio, the target), written
as `results.json` (everything, every sample) and `results.md` (the table)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Samples


@dataclass(frozen=True)
class Target:
    """`ratio_min`: llmhost ÷ baseline ≥ value; `ratio_max`: ≤ value; `max`: llmhost ≤ value."""

    kind: str
    value: float

    def text(self, unit: str) -> str:
        if self.kind == "ratio_min":
            return f"ratio ≥ {self.value:g}"
        if self.kind == "ratio_max":
            return f"ratio ≤ {self.value:g}"
        return f"≤ {_fmt(self.value, unit)}"


@dataclass
class Metric:
    section: str
    name: str
    unit: str
    llmhost: Samples
    baseline: Samples | None = None
    baseline_name: str = ""
    target: Target | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.values or not self.llmhost.values:
            return None
        base = self.baseline.summary()["median"]
        return None if not base else self.llmhost.summary()["median"] / base

    @property
    def paired_ratios(self) -> list[float]:
        """Per-round ratios, when both sides have one value per round."""
        if self.baseline is None or len(self.baseline.values) != len(self.llmhost.values):
            return []
        return [h / b for h, b in zip(self.llmhost.values, self.baseline.values, strict=True) if b]

    @property
    def status(self) -> str:
        if self.target is None:
            return "info"
        if self.target.kind == "max":
            value = self.llmhost.summary()["median"]
        else:
            value = self.ratio
        if value is None or math.isnan(value):
            return "n/a"
        ok = value >= self.target.value if self.target.kind == "ratio_min" else value <= self.target.value
        return "pass" if ok else "MISS"

    def as_dict(self) -> dict[str, Any]:
        paired = self.paired_ratios
        return {
            "section": self.section,
            "metric": self.name,
            "unit": self.unit,
            "llmhost": self.llmhost.summary(),
            "baseline": self.baseline.summary() if self.baseline is not None else None,
            "baseline_name": self.baseline_name or None,
            "ratio": self.ratio,
            "ratio_per_round": {"min": min(paired), "max": max(paired)} if paired else None,
            "target": {"kind": self.target.kind, "value": self.target.value} if self.target else None,
            "status": self.status,
            "note": self.note or None,
            **self.extra,
        }


def _fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "%":
        return f"{value:+.1f} %"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.1f} {unit}"


def _cell(samples: Samples | None, unit: str) -> str:
    if samples is None or not samples.values:
        return "–"
    s = samples.summary()
    if s["n"] == 1:
        return _fmt(s["median"], unit)
    return f"{_fmt(s['median'], unit)} ({_fmt(s['min'], unit)}–{_fmt(s['max'], unit)})"


def markdown_table(metrics: list[Metric]) -> str:
    lines = [
        "| # | metric | llmhost median (min–max) | baseline median (min–max) | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in metrics:
        ratio = m.ratio
        paired = m.paired_ratios
        ratio_text = "–" if ratio is None else f"{ratio:.3f}"
        if paired and len(paired) > 1:
            ratio_text += f" ({min(paired):.2f}–{max(paired):.2f})"
        base = _cell(m.baseline, m.unit)
        if m.baseline_name and base != "–":
            base = f"{base} [{m.baseline_name}]"
        target = m.target.text(m.unit) if m.target else "–"
        result = {"pass": "pass", "MISS": "**MISS**"}.get(m.status, m.status)
        cells = [m.section, m.name, _cell(m.llmhost, m.unit), base, ratio_text, target, result]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_text(machine: dict[str, Any]) -> str:
    gpus = ", ".join(f"{g['name']} ({g['memory']}, driver {g['driver']})" for g in machine.get("gpus", []))
    return "\n".join(
        [
            f"- CPU: {machine['cpu']}, {machine['cores']} cores; RAM {machine['memory_gib']} GiB",
            f"- GPU: {gpus or 'none'}",
            f"- OS: {machine['os']}; Python {machine['python']}",
            f"- vLLM {machine['vllm']}, torch {machine['torch']}, diffusers {machine['diffusers']}, "
            f"transformers {machine['transformers']}",
            f"- llmhost commit {machine['llmhost_commit']}; load generator pinned to CPU "
            f"{machine.get('load_generator_cpu')}",
            f"- load average (1, 5, 15 min) at start {machine['load_average_at_start']}, "
            f"at end {machine.get('load_average_at_end')}",
        ]
    )


def write(out_dir: Path, run: dict[str, Any], metrics: list[Metric]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {**run, "metrics": [m.as_dict() for m in metrics]}
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    misses = [m for m in metrics if m.status == "MISS"]
    notes = [f"- {m.section} {m.name}: {m.note}" for m in metrics if m.note]
    md = [
        f"# llmhost benchmark: {run['title']}",
        "",
        f"`{run['command']}` — {run['started']}, {run['total_seconds']:.0f} s in all, "
        f"{run['rounds']} rounds, sides alternating.",
        "",
        machine_text(run["machine"]),
        "",
        f"Models: {run['subjects_text']}",
        "",
        "Ratio = llmhost median ÷ baseline median (per-round ratios in brackets). Baselines: "
        "**vllm** = vLLM's own OpenAI server (`python -m vllm.entrypoints.openai.api_server`); "
        "**engine** = `AsyncLLM` created directly in a process of its own; **pipeline** = the "
        "diffusers pipeline called directly.",
        "",
        markdown_table(metrics),
        "",
        f"{len(misses)} target(s) missed." if misses else "Every target met.",
    ]
    if notes:
        md += ["", "Notes:", *notes]
    if run.get("skipped"):
        md += ["", "Not run:", *[f"- {k}: {v}" for k, v in run["skipped"].items()]]
    if run.get("failed"):
        md += ["", "Failed (see results.json and the logs):"]
        md += [f"- {k}: {v.splitlines()[0]}" for k, v in run["failed"].items()]
    md_path = out_dir / "results.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return json_path, md_path

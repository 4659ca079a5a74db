"""`llmhost status`: a running host's routes and GPU as a readable table."""

from __future__ import annotations

import calendar
import time
from typing import Any

import httpx

from llmhost.units import GIB


class Unreachable(Exception):
    """The host did not answer (or refused the key); the message says what to do."""


class NoAnswer(Unreachable):
    """Nothing answered at the URL at all (not running, or elsewhere)."""


def fetch_stats(url: str, api_key: str | None, timeout: float = 5.0) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{url.rstrip('/')}/stats", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise NoAnswer(f"no llmhost answering at {url} ({type(exc).__name__}). Is it running?") from None
    if response.status_code == 401:
        raise Unreachable(f"{url} refused the key: set VLLM_API_KEY to the host's key.")
    if response.status_code != 200:
        raise Unreachable(f"{url}/stats answered {response.status_code}: {response.text[:200]}")
    stats: dict[str, Any] = response.json()
    return stats


def _ago(iso: str | None) -> str:
    if iso is None:
        return "never"
    then = calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))  # a UTC time: no zone, no DST
    seconds = max(0, int(time.time() - then))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _state(model: dict[str, Any]) -> str:
    if model["state"] in ("loading", "waking") and model.get("loading_seconds") is not None:
        return f"{model['state']} {model['loading_seconds']:.0f}s"
    return str(model["state"])


def _standby(model: dict[str, Any]) -> str:
    """The STANDBY cell: the setting, what an asleep model holds, and its wakes."""
    standby = model.get("standby", "off")
    if standby != "on":
        return str(standby)
    ram = model.get("standby_ram_bytes")
    cell = f"L{model['sleep_level']}"
    if ram is not None:
        cell += f" {ram / GIB:.1f}G RAM"
    last = model["wake_seconds"]["last"]
    if last is not None:
        cell += f" wake {last:.1f}s"
    return cell


HEADER = (
    "ROUTE",
    "MODEL",
    "STATE",
    "MEMORY",
    "LAST HIT",
    "LOADS",
    "COLD START",
    "STANDBY",
    "IN FLIGHT",
    "WAITING",
)
# Room for the widest usual value of each column ("loading 999s", "99.9 GiB", "119s ago",
# "unavailable"), so that a table refreshed under `watch` keeps its columns in place as
# states change.
MIN_WIDTHS = (
    0,
    0,
    len("loading 999s"),
    len("99.9 GiB"),
    len("119s ago"),
    5,
    len("999.9s"),
    len("unavailable"),
    0,
    0,
)


# Shown only when a route is resident (`resident = true`): after STATE, "yes" or blank.
RESIDENT_COLUMN = 3


def render(stats: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = [HEADER]
    for m in stats["models"]:
        memory = f"{m['memory_bytes'] / GIB:.1f} GiB" if m.get("memory_bytes") is not None else "-"
        cold = m["cold_start_seconds"]["last"]
        rows.append(
            (
                m["route"],
                m["model"],
                _state(m),
                memory,
                _ago(m["last_hit"]),
                str(m["loads"]),
                f"{cold:.1f}s" if cold is not None else "-",
                _standby(m),
                str(m["in_flight"]),
                str(m["waiting"]),
            )
        )
    least_widths: tuple[int, ...] = MIN_WIDTHS
    if any(m.get("resident") for m in stats["models"]):
        marks = ["RESIDENT", *("yes" if m.get("resident") else "" for m in stats["models"])]
        rows = [
            (*row[:RESIDENT_COLUMN], mark, *row[RESIDENT_COLUMN:])
            for row, mark in zip(rows, marks, strict=True)
        ]
        least_widths = (*MIN_WIDTHS[:RESIDENT_COLUMN], 0, *MIN_WIDTHS[RESIDENT_COLUMN:])
    # Widths from the rendered cells (a state reads "loading 3s"), never narrower than usual.
    widths = [max(least, *(len(row[i]) for row in rows)) for i, least in enumerate(least_widths)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for m in stats["models"]:
        if m.get("last_error"):
            lines.append(f"  {m['route']}: last error: {m['last_error']}")
        if m.get("standby_reason"):
            lines.append(f"  {m['route']}: standby {m['standby']}: {m['standby_reason']}")
        if m.get("last_wake_error"):
            failures = m["wake_failures"]
            lines.append(f"  {m['route']}: {failures} failed wake(s), last: {m['last_wake_error']}")
    gpu = stats["gpu"]
    if gpu["available"]:
        free, total = gpu["free_bytes"] / GIB, gpu["total_bytes"] / GIB
        lines.append(f"\nGPU {gpu['name']}: {free:.1f} GiB free of {total:.1f} GiB")
    else:
        lines.append(f"\nGPU: not watched ({gpu['reason']})")
    lines.append(f"policy {stats['policy']}, up {stats['uptime_seconds']:.0f}s")
    return "\n".join(lines)

"""`llmhost pull`: put the weights of configured routes into the cache `serve` reads, ahead of use.

A first request should not wait for a 15 GB download, and a download should hold what
the route loads and nothing else. One module per part: `selection` (which files each
loader reads: pure), `plan` (the Hub's metadata, the download), `cache` (where
`serve` reads, and whether this user may write there), `errors` (one line per failure).
The command itself is llmhost.cli.pull.
"""

from __future__ import annotations

from collections.abc import Iterable

from llmhost.config import Catalog, RouteConfig
from llmhost.pull.errors import PullError, explain
from llmhost.pull.plan import Plan, RepoFile, plan_route

__all__ = ["Plan", "PullError", "RepoFile", "download_bytes", "explain", "human_size", "plan_route", "select"]


def select(catalog: Catalog, names: Iterable[str]) -> list[RouteConfig]:
    names = list(names)
    unknown = [n for n in names if n not in catalog.routes]
    if unknown:
        raise PullError(f"no route named {', '.join(unknown)}; routes: {', '.join(catalog.routes)}")
    return [catalog.routes[n] for n in names] if names else list(catalog.routes.values())


def human_size(size: int) -> str:
    """Bytes in decimal units, as the Hub shows file sizes (6.75 GB, 168 MB, 706 B)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}" if unit == "GB" else f"{size / scale:.0f} {unit}"
    return f"{size} B"


def download_bytes(routes: Iterable[RouteConfig], token: str | None = None) -> int | None:
    """What `llmhost pull` would fetch for `routes`, from the Hub's metadata; None when
    any route's plan cannot be read (its own error says why, where it is printed)."""
    total = 0
    for route in routes:
        try:
            total += plan_route(route, token).total_bytes
        except Exception:
            return None
    return total

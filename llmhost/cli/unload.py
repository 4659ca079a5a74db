"""`llmhost unload [ROUTE ...]`: free the GPU now, the way `docker compose stop` did."""

from __future__ import annotations

import argparse

from llmhost.cli.remote import post_admin
from llmhost.units import GIB

# The host drains in-flight requests (drain_timeout_seconds) and shuts each engine down
# in turn before it answers: give it that long, and more.
READ_TIMEOUT_SECONDS = 900.0


def cmd_unload(args: argparse.Namespace) -> int:
    import httpx

    timeout = httpx.Timeout(10, read=READ_TIMEOUT_SECONDS)
    body = post_admin("unload", args.url, "unload", timeout=timeout, json={"routes": list(args.routes)})
    if body is None:
        return 1
    print(summary(body))
    return 0


def summary(body: dict[str, object]) -> str:
    """One line from POST /admin/unload's answer."""
    unloaded = body.get("unloaded") or []
    what = (
        f"unloaded {', '.join(map(str, unloaded))}"
        if isinstance(unloaded, list) and unloaded
        else "nothing was loaded"
    )
    freed = body.get("freed_bytes")
    if isinstance(freed, int):
        return f"{what}; {freed / GIB:.2f} GiB of GPU memory came back"
    return f"{what}; GPU memory freed: unknown ({body.get('freed_reason')})"

"""`llmhost unload [ROUTE ...]`: free the GPU now, the way `docker compose stop` did."""

from __future__ import annotations

import argparse
import sys

from llmhost.cli.loading import settings_from_env
from llmhost.cli.remote import UNREACHABLE_HINT, local_url
from llmhost.units import GIB

# The host drains in-flight requests (drain_timeout_seconds) and shuts each engine down
# in turn before it answers: give it that long, and more.
READ_TIMEOUT_SECONDS = 900.0


def cmd_unload(args: argparse.Namespace) -> int:
    import httpx

    settings = settings_from_env()
    url = (args.url or local_url(settings)).rstrip("/")
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    try:
        response = httpx.post(
            f"{url}/admin/unload",
            json={"routes": list(args.routes)},
            headers=headers,
            timeout=httpx.Timeout(10, read=READ_TIMEOUT_SECONDS),
        )
    except httpx.HTTPError as exc:
        print(
            f"llmhost unload: no llmhost answering at {url} ({type(exc).__name__}). {UNREACHABLE_HINT}",
            file=sys.stderr,
        )
        return 1
    body = response.json()
    if response.status_code != 200:
        print(f"llmhost unload: {body.get('error', {}).get('message', response.text)}", file=sys.stderr)
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

"""`llmhost status` and `llmhost reload`: commands that talk to a running host."""

from __future__ import annotations

import argparse
import sys

from llmhost.cli.loading import settings_from_env
from llmhost.settings import Settings


def cmd_status(args: argparse.Namespace) -> int:
    from llmhost.status import Unreachable, fetch_stats, render

    settings = settings_from_env()
    url = args.url or local_url(settings)
    try:
        print(render(fetch_stats(url, settings.api_key)))
    except Unreachable as exc:
        print(f"llmhost status: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    import httpx

    settings = settings_from_env()
    url = (args.url or local_url(settings)).rstrip("/")
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    try:
        response = httpx.post(f"{url}/admin/reload", headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        print(f"llmhost reload: no llmhost answering at {url} ({type(exc).__name__})", file=sys.stderr)
        return 1
    body = response.json()
    if response.status_code != 200:
        print(f"llmhost reload: {body.get('error', {}).get('message', response.text)}", file=sys.stderr)
        return 1
    summary = ", ".join(f"{k} {', '.join(body[k]) or 'none'}" for k in ("added", "removed", "changed"))
    print(f"reloaded: {summary}")
    return 0


def local_url(settings: Settings) -> str:
    host = settings.llmhost_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.llmhost_port}"

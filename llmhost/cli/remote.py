"""`llmhost status` and `llmhost reload`: commands that talk to a running host."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from llmhost.cli.loading import settings_from_env
from llmhost.cli.ports import url_host
from llmhost.settings import Settings

if TYPE_CHECKING:
    import httpx

# What to run when the host does not answer: it runs as a systemd service, whose state and
# log systemd keeps.
UNREACHABLE_HINT = (
    "If it runs as the service: `systemctl status llmhost`, and its log: `journalctl -u llmhost -e`."
)

# The help epilog of every command that talks to a running host (status, reload, unload):
# where its key and address come from, and what to look at when the host does not answer.
REMOTE_EPILOG = """the key:
  VLLM_API_KEY, read from the environment, else from ./.env in the directory you run the
  command in (the service's is /opt/llmhost/.env: run it from /opt/llmhost, or export the
  key). The host's address: --url, else http://LLMHOST_HOST:LLMHOST_PORT read the same way
  (default http://127.0.0.1:8000).

when the host does not answer:
  systemctl status llmhost      is the service running, since when, its last lines
  journalctl -u llmhost -e      its whole log, the latest at the bottom
"""


def cmd_status(args: argparse.Namespace) -> int:
    from llmhost.cli.status import NoAnswer, Unreachable, fetch_stats, render

    settings = settings_from_env()
    url = args.url or local_url(settings)
    try:
        print(render(fetch_stats(url, settings.api_key)))
    except Unreachable as exc:
        hint = f" {UNREACHABLE_HINT}" if isinstance(exc, NoAnswer) else ""
        print(f"llmhost status: {exc}{hint}", file=sys.stderr)
        return 1
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    body = post_admin("reload", args.url, "reload", timeout=30)
    if body is None:
        return 1
    summary = ", ".join(f"{k} {', '.join(body[k]) or 'none'}" for k in ("added", "removed", "changed"))
    print(f"reloaded: {summary}")
    return 0


def post_admin(
    command: str, url: str | None, path: str, *, timeout: float | httpx.Timeout, json: Any = None
) -> dict[str, Any] | None:
    """POST /admin/`path` on the running host (--url, else the one these settings start), with
    the key: its JSON answer, or None once the failure is printed as `llmhost <command>: ...`
    (no host answering, or the host's error)."""
    import httpx

    settings = settings_from_env()
    url = (url or local_url(settings)).rstrip("/")
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    try:
        response = httpx.post(f"{url}/admin/{path}", json=json, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        print(
            f"llmhost {command}: no llmhost answering at {url} ({type(exc).__name__}). {UNREACHABLE_HINT}",
            file=sys.stderr,
        )
        return None
    body: dict[str, Any] = response.json()
    if response.status_code != 200:
        print(f"llmhost {command}: {body.get('error', {}).get('message', response.text)}", file=sys.stderr)
        return None
    return body


def local_url(settings: Settings) -> str:
    """The URL of the host these settings start, from this machine (IPv6 in brackets)."""
    return f"http://{url_host(settings.llmhost_host)}:{settings.llmhost_port}"

"""The `llmhost` command: serve, demo, check, status, reload, unload, pull."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from llmhost.cli.check import cmd_check
from llmhost.cli.pull import cmd_pull
from llmhost.cli.remote import REMOTE_EPILOG, cmd_reload, cmd_status
from llmhost.cli.serve import cmd_demo, cmd_serve
from llmhost.cli.unload import cmd_unload
from llmhost.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmhost", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the routes of models.toml")
    serve.add_argument("--config", type=Path, help="models.toml (default: LLMHOST_CONFIG or ./models.toml)")
    serve.add_argument("--host", help="address to bind (default: LLMHOST_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: LLMHOST_PORT or 8000)")
    serve.add_argument(
        "--allow-no-key", action="store_true", help="allow a non-loopback address without VLLM_API_KEY"
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="serve the shipped routes on tiny local models (no GPU needed)")
    demo.add_argument("--port", type=int, help="port (default: LLMHOST_PORT or 8000)")
    demo.set_defaults(func=cmd_demo, host=None, allow_no_key=False)

    raw = argparse.RawDescriptionHelpFormatter  # the epilog's layout as written
    status = sub.add_parser(
        "status",
        help="show a running host's routes, memory and queues",
        epilog=REMOTE_EPILOG,
        formatter_class=raw,
    )
    status.add_argument("--url", help="host URL (default: http://LLMHOST_HOST:LLMHOST_PORT)")
    status.set_defaults(func=cmd_status)

    pull = sub.add_parser("pull", help="download the files routes load into the cache serve reads (HF_HOME)")
    pull.add_argument("routes", nargs="*", metavar="ROUTE", help="routes to fetch (default: all)")
    pull.add_argument("--config", type=Path, help="models.toml (default: LLMHOST_CONFIG or ./models.toml)")
    pull.add_argument("--dry-run", action="store_true", help="list the files and sizes; fetch nothing")
    pull.set_defaults(func=cmd_pull)

    reload = sub.add_parser(
        "reload", help="make a running host re-read models.toml", epilog=REMOTE_EPILOG, formatter_class=raw
    )
    reload.add_argument("--url", help="host URL (default: http://LLMHOST_HOST:LLMHOST_PORT)")
    reload.set_defaults(func=cmd_reload)

    unload = sub.add_parser(
        "unload",
        help="unload models now to free the GPU (requests in flight finish; the next one loads again)",
        epilog=REMOTE_EPILOG,
        formatter_class=raw,
    )
    unload.add_argument("routes", nargs="*", metavar="ROUTE", help="routes to unload (default: every route)")
    unload.add_argument("--url", help="host URL (default: http://LLMHOST_HOST:LLMHOST_PORT)")
    unload.set_defaults(func=cmd_unload)

    check = sub.add_parser("check", help="validate models.toml and print the route table")
    check.add_argument("--config", type=Path, help="models.toml (default: LLMHOST_CONFIG or ./models.toml)")
    check.add_argument("--host", help="check for `serve --host` (default: LLMHOST_HOST or 127.0.0.1)")
    check.add_argument("--port", type=int, help="check for `serve --port` (default: LLMHOST_PORT or 8000)")
    check.add_argument("--allow-no-key", action="store_true", help="check for `serve --allow-no-key`")
    check.add_argument(
        "--gpu-memory",
        type=float,
        metavar="GIB",
        help="estimate each route's fit on a GPU of this many GiB (default: the GPU NVML sees)",
    )
    check.add_argument("--online", action="store_true", help="read sizes missing from the cache from the Hub")
    check.set_defaults(func=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"llmhost: {exc}", file=sys.stderr)
        return 2
    return code


def console() -> None:
    """The `llmhost` command. After `serve` (or `demo`) has shut down cleanly — engines
    stopped, requests drained, logs written — the process ends at once: tearing down the
    interpreter with vLLM and torch imported takes another 1.5-2.5 s and does nothing
    that matters, and under systemd the last log line should be the last thing that
    takes time."""
    code = main()
    if sys.argv[1:2] in (["serve"], ["demo"]):
        quick_exit(code)
    sys.exit(code)


def quick_exit(code: int) -> NoReturn:
    """End the process now, its work done: logs and output flushed, the engines' log
    files removed, no interpreter teardown (which with vLLM loaded takes seconds and
    prints vLLM's complaints about objects it finalizes too late)."""
    from llmhost.backends.vllm.failure import remove_log_dir

    remove_log_dir()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

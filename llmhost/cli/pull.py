"""`llmhost pull`: download the weights of routes into the cache."""

from __future__ import annotations

import argparse
import sys

from llmhost.cli.loading import load


def cmd_pull(args: argparse.Namespace) -> int:
    from llmhost.pull import PullError, pull_route, select

    settings, catalog = load(args.config)
    settings.export_cache_dir()
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    try:
        routes = select(catalog, args.routes)
    except PullError as exc:
        print(f"llmhost pull: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for route in routes:
        print(f"{route.name}: fetching {route.model}", flush=True)
        try:
            print(pull_route(route, token), flush=True)
        except PullError as exc:
            failed += 1
            print(f"llmhost pull: {exc}", file=sys.stderr, flush=True)
    return 1 if failed else 0

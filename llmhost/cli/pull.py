"""`llmhost pull`: download the files routes load into the cache `serve` reads.

First every route's plan from the Hub's metadata (files, sizes), printed; then the
downloads. `--dry-run` stops after the plan, listing each file. A cache this user may
not write (the service user's, under systemd) stops it before anything is fetched.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path

from llmhost.cli.loading import load
from llmhost.config import RouteConfig
from llmhost.pull import Plan, PullError, explain, human_size, select
from llmhost.pull.cache import problem, sudo
from llmhost.settings import WeightsCache


def cmd_pull(args: argparse.Namespace) -> int:
    settings, catalog = load(args.config)
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    try:
        routes = select(catalog, args.routes)
    except PullError as exc:
        print(f"llmhost pull: {exc}", file=sys.stderr)
        return 2
    cache = settings.weights_cache()  # the cache `serve` reads, never its fallback
    refused = problem(cache)
    if refused is not None and not args.dry_run:
        print(f"llmhost pull: {_refusal(refused, cache, args)}", file=sys.stderr)
        return 2
    # huggingface_hub reads HF_HOME once, at import: the token file and every path below
    # it are then the ones `serve` uses.
    os.environ["HF_HOME"] = str(cache.home)
    print(f"Cache: {cache.hub}" + (" (dry run: nothing is downloaded)" if args.dry_run else ""), flush=True)

    failed = 0
    plans: list[Plan] = []
    for route in routes:
        try:
            plan = _plan(route, token, cache, args.dry_run)
        except Exception as exc:
            failed += 1
            print(f"llmhost pull: {_message(route, exc, token)}", file=sys.stderr, flush=True)
            continue
        if plan is not None:
            plans.append(plan)
    have = {} if args.dry_run else {p.route: _cached(p, cache) for p in plans}
    for plan in plans:
        print(_summary(plan, have.get(plan.route)), flush=True)
        if args.dry_run:
            _list(plan)
    if len(plans) > 1:
        count, size = sum(len(p.files) for p in plans), sum(p.total_bytes for p in plans)
        print(f"Total: {count} files, {human_size(size)}", flush=True)
    if args.dry_run:
        if refused is not None:
            print(f"Note: {_refusal(refused, cache, args)}", flush=True)
        return 1 if failed else 0

    from llmhost.pull.plan import download

    for plan in plans:
        print(f"{plan.route}: fetching {plan.repo}", flush=True)
        try:
            folder = download(plan, token, cache.hub)
        except Exception as exc:
            failed += 1
            print(
                f"llmhost pull: {plan.route}: {explain(plan.repo, exc, token)}", file=sys.stderr, flush=True
            )
            continue
        print(f"{plan.route}: {plan.repo} ready in {folder}", flush=True)
    return 1 if failed else 0


def _plan(route: RouteConfig, token: str | None, cache: WeightsCache, dry_run: bool) -> Plan | None:
    """The route's plan; None (with a line saying why) when there is nothing to fetch."""
    from llmhost.pull.errors import offline
    from llmhost.pull.plan import plan_route, resolve_commit

    if Path(route.model).expanduser().exists():
        print(f"{route.name}: {route.model} is a local path, nothing to download", flush=True)
        return None
    if offline():
        from huggingface_hub.errors import OfflineModeIsEnabled

        if not _probe_cached(route, cache):
            raise PullError(f"{route.name}: {explain(route.model, OfflineModeIsEnabled(), token)}")
        print(
            f"{route.name}: {route.model} is in the cache; HF_HUB_OFFLINE is set, so the Hub "
            "is not asked whether it is complete",
            flush=True,
        )
        return None
    # A real run records the branch's commit in the cache first (refs/, as the loaders look
    # it up offline) and lists that commit; a dry run writes nothing.
    commit = None if dry_run else resolve_commit(route, token, cache.hub)
    return plan_route(route, token, revision=commit)


def _message(route: RouteConfig, exc: Exception, token: str | None) -> str:
    if isinstance(exc, PullError):
        return str(exc)
    return f"{route.name}: {explain(route.model, exc, token)}"


def _probe_cached(route: RouteConfig, cache: WeightsCache) -> bool:
    from huggingface_hub import try_to_load_from_cache

    from llmhost.pull.plan import revision_of

    probe = "model_index.json" if route.kind == "diffusion" else "config.json"
    found = try_to_load_from_cache(route.model, probe, cache_dir=cache.hub, revision=revision_of(route))
    return isinstance(found, str)


def _cached(plan: Plan, cache: WeightsCache) -> int:
    from llmhost.pull.plan import cached

    names = set(cached(plan, cache.hub))
    return sum(f.size or 0 for f in plan.files if f.name in names)


def _summary(plan: Plan, cached_bytes: int | None) -> str:
    at = plan.revision or "main"
    at = at[:12] if re.fullmatch(r"[0-9a-f]{40}", at) else at
    at += "" if plan.commit.startswith(at) else f" ({plan.commit[:12]})"
    line = f"{plan.route}: {plan.repo} at {at}: {len(plan.files)} files, {human_size(plan.total_bytes)}"
    if cached_bytes:
        line += f" ({human_size(cached_bytes)} of it already in the cache)"
    if plan.left_out:
        line += (
            f"; {len(plan.left_out)} more files in the repository ({human_size(plan.left_out_bytes)}) "
            "are not loaded and not fetched"
        )
    return line


def _list(plan: Plan) -> None:
    width = max((len(human_size(f.size or 0)) for f in plan.files), default=0)
    for f in plan.files:
        size = human_size(f.size) if f.size is not None else "?"
        print(f"  {size.rjust(width)}  {f.name}")


def _refusal(refused: tuple[str, str | None], cache: WeightsCache, args: argparse.Namespace) -> str:
    """The refusal, with the command to run instead (as the cache's owner)."""
    reason, user = refused
    if user is None:
        return f"{reason}. Nothing was downloaded."
    command = [*sudo(cache, user), *_self(), "pull"]
    if args.config is not None:
        command += ["--config", str(args.config)]
    command += args.routes
    return (
        f"{reason}. Nothing was downloaded. `llmhost serve` reads this cache: run the download "
        f"as {user}: {shlex.join(command)}"
    )


def _self() -> list[str]:
    """How this command was started: .venv/bin/llmhost, or python -m llmhost."""
    if Path(sys.argv[0]).name == "llmhost":
        return [sys.argv[0]]
    return [sys.executable, "-m", "llmhost"]

"""The `llmhost` command: serve, demo, check, status, reload, pull."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llmhost.config import Catalog, ConfigError, load_catalog
from llmhost.settings import LOOPBACK_HOSTS, Settings

log = logging.getLogger("llmhost")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "environment"
        raise ConfigError(f"environment variable {name}: {first['msg']}.") from None
    except PermissionError as exc:
        raise _unreadable(Path(exc.filename or ".env"), "640") from None


def load(config: Path | None) -> tuple[Settings, Catalog]:
    """Settings and the catalog with environment overrides applied; ConfigError if unusable."""
    settings, raw = load_raw(config)
    return settings, settings.apply_to(raw)


def load_raw(config: Path | None) -> tuple[Settings, Catalog]:
    """Settings and models.toml as written, before the environment's overrides."""
    settings = _settings()
    path = config if config is not None else settings.llmhost_config
    try:
        with path.open("rb"):
            pass
    except PermissionError:
        raise _unreadable(path, "644") from None
    except OSError:
        pass  # missing and the like: load_catalog says so
    return settings, load_catalog(path)


def _unreadable(path: Path, mode: str) -> ConfigError:
    """The one-line error for a file the service user may not read, with the fix
    (the permission scheme of systemd/README.md: owner you, group llmhost's, mode 640)."""
    import grp
    import os
    import pwd

    try:
        user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    except KeyError:  # an id without a name (some containers)
        user, group = str(os.getuid()), str(os.getgid())
    path = path.absolute()
    return ConfigError(
        f"{path}: permission denied for user {user}, who runs llmhost. "
        f"Fix: sudo chgrp {group} {path} && sudo chmod {mode} {path}"
    )


def cmd_check(args: argparse.Namespace) -> int:
    from llmhost.preflight import refuse_missing

    settings, raw = load_raw(args.config)
    catalog = settings.apply_to(raw)
    refuse_missing(catalog)  # a path that does not exist would evict, then fail, at load
    rows = [("ROUTE", "KIND", "AUTH", "IDLE", "MODEL", "SERVED NAMES")]
    for r in catalog.routes.values():
        rows.append(
            (
                r.name,
                r.kind,
                r.auth_mode,
                f"{r.effective_idle_seconds(catalog.host):g}s",
                r.model,
                ", ".join(r.served_names) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    host = catalog.host
    print(
        f"\n{catalog.source}: {len(catalog.routes)} routes, policy {host.policy}, "
        f"start timeout {host.start_timeout_seconds:g}s, prewarm {', '.join(host.prewarm) or 'none'}"
    )
    _print_settings(settings.effective(raw, args.config))
    _print_fit(args, settings, catalog)
    return 0


def _print_settings(rows: list[tuple[str, str, str]]) -> None:
    """The effective host settings of `check`, each with where its value came from."""
    print("\nSettings (environment > .env > models.toml > default):")
    table = [("SETTING", "VALUE", "FROM"), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(2)]
    for name, value, origin in table:
        print(f"  {name.ljust(widths[0])}  {value.ljust(widths[1])}  {origin}")


def _print_fit(args: argparse.Namespace, settings: Settings, catalog: Catalog) -> None:
    """The fit estimate of `check`: for --gpu-memory GIB, else for the GPU NVML sees."""
    import os

    from llmhost import estimate

    if args.gpu_memory is not None:
        if not args.gpu_memory > 0:
            raise ConfigError(f"--gpu-memory is the GPU's size in GiB (e.g. 16), not {args.gpu_memory:g}.")
        gpu_bytes, label = int(args.gpu_memory * estimate.GIB), "--gpu-memory"
    else:
        detected, label = estimate.detected_gpu_bytes()
        if detected is None:
            print(f"\nNo fit estimate: no GPU seen ({label}); pass --gpu-memory GIB for one.")
            return
        gpu_bytes = detected
    if args.online:
        settings.export_hub_token()
    # The cache `llmhost serve` uses: HF_HOME/HF_HUB_CACHE when set, else settings.hf_home.
    env_cache = "HF_HOME" in os.environ or "HF_HUB_CACHE" in os.environ
    cache = None if env_cache or not settings.hf_home.is_dir() else settings.hf_home / "hub"
    estimates = estimate.estimate_routes(catalog.routes.values(), cache_dir=cache, online=args.online)
    print("\n" + estimate.render(estimates, gpu_bytes, label, catalog.host.policy))


def cmd_status(args: argparse.Namespace) -> int:
    from llmhost.status import Unreachable, fetch_stats, render

    settings = _settings()
    url = args.url or _local_url(settings)
    try:
        print(render(fetch_stats(url, settings.api_key)))
    except Unreachable as exc:
        print(f"llmhost status: {exc}", file=sys.stderr)
        return 1
    return 0


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


def cmd_reload(args: argparse.Namespace) -> int:
    import httpx

    settings = _settings()
    url = (args.url or _local_url(settings)).rstrip("/")
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


def _local_url(settings: Settings) -> str:
    host = settings.llmhost_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{settings.llmhost_port}"


def cmd_demo(args: argparse.Namespace) -> int:
    from llmhost.demo import next_steps, write_demo_config

    print("llmhost demo: building the tiny local models (once; cached)...", flush=True)
    args.config = write_demo_config()
    settings = _settings()
    port = args.port or settings.llmhost_port
    print(next_steps(port, settings.api_key is not None, args.config), flush=True)
    return cmd_serve(args)


def cmd_serve(args: argparse.Namespace) -> int:
    settings, catalog = load(args.config)
    host = args.host or settings.llmhost_host
    port = args.port or settings.llmhost_port
    if host not in LOOPBACK_HOSTS and settings.api_key is None and not args.allow_no_key:
        print(
            f"llmhost: refusing to listen on {host} without an API key: anyone on the network "
            "could use every model. Set VLLM_API_KEY, or pass --allow-no-key if that is what "
            "you want.",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from llmhost.app import create_app
    from llmhost.notify import Notifier, NotifyingServer

    notifier = Notifier()

    settings.export_cache_dir()
    level = settings.llmhost_log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, catalog)
    # uvicorn drains and runs the lifespan shutdown on SIGTERM/SIGINT, then re-raises the
    # signal under the handlers it found. With these no-op handlers in place that re-raise
    # is harmless and a clean shutdown exits 0, as systemd expects.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _after_graceful_shutdown)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.llmhost_log_level.lower(),
        timeout_graceful_shutdown=int(catalog.host.drain_timeout_seconds),
    )
    # Under systemd (Type=notify): READY=1 once /healthz answers, STOPPING=1 at shutdown.
    # The stop signal abandons loads in progress and refuses new work at once; requests
    # in flight still finish during uvicorn's drain (issue: a stop sat out a cold load).
    server = NotifyingServer(config, notifier, on_stop=lambda: _begin_close(app))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return 0 if server.started else 3  # 3: uvicorn's "could not start" (port in use, ...)


def _begin_close(app: Any) -> None:
    host = getattr(app.state, "host", None)  # absent when stopped before start-up finished
    if host is not None:
        host.manager.begin_close()


def _after_graceful_shutdown(signum: int, frame: object) -> None:
    log.info("stopped on signal %d", signum)


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

    status = sub.add_parser("status", help="show a running host's routes, memory and queues")
    status.add_argument("--url", help="host URL (default: http://LLMHOST_HOST:LLMHOST_PORT)")
    status.set_defaults(func=cmd_status)

    pull = sub.add_parser("pull", help="download the weights of routes into the cache (HF_HOME)")
    pull.add_argument("routes", nargs="*", metavar="ROUTE", help="routes to fetch (default: all)")
    pull.add_argument("--config", type=Path, help="models.toml (default: LLMHOST_CONFIG or ./models.toml)")
    pull.set_defaults(func=cmd_pull)

    reload = sub.add_parser("reload", help="make a running host re-read models.toml")
    reload.add_argument("--url", help="host URL (default: http://LLMHOST_HOST:LLMHOST_PORT)")
    reload.set_defaults(func=cmd_reload)

    check = sub.add_parser("check", help="validate models.toml and print the route table")
    check.add_argument("--config", type=Path, help="models.toml (default: LLMHOST_CONFIG or ./models.toml)")
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
        from llmhost.backends.engine_failure import remove_log_dir

        remove_log_dir()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console()

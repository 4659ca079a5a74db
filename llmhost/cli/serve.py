"""`llmhost serve` and `llmhost demo`: run the host until a stop signal."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from llmhost.cli.loading import load, settings_from_env
from llmhost.cli.ports import port_problem
from llmhost.settings import refuse_exposure

log = logging.getLogger("llmhost")

# uvicorn's exit status for "could not start". Not 2 (a configuration error, which systemd
# does not retry): the port may be freed, and the service should then come up by itself.
PORT_TAKEN = 3


def cmd_demo(args: argparse.Namespace) -> int:
    from llmhost.cli.demo import next_steps, write_demo_config

    print("llmhost demo: building the tiny local models (once; cached)...", flush=True)
    args.config = write_demo_config()
    settings = settings_from_env()
    port = args.port or settings.llmhost_port
    print(next_steps(port, settings.api_key is not None, args.config), flush=True)
    return cmd_serve(args)


def cmd_serve(args: argparse.Namespace) -> int:
    settings, catalog = load(args.config)
    host = args.host or settings.llmhost_host
    port = args.port or settings.llmhost_port
    refuse_exposure(host, settings.api_key, args.allow_no_key)
    taken = port_problem(host, port)  # before any model is loaded (PREWARM_ROUTES) for nothing
    if taken is not None:
        print(f"llmhost: {taken}", file=sys.stderr)
        return PORT_TAKEN
    import uvicorn

    from llmhost.cli.notify import Notifier, NotifyingServer
    from llmhost.server.app import create_app, exit_status

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
    # The model scheduler died (llmhost.server.app): stop like on SIGTERM, then exit non-zero.
    app.state.stop_server = lambda: setattr(server, "should_exit", True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    except SystemExit:  # uvicorn's own "could not start": taken since the look above, or a failed start-up
        if server.started:
            raise
        taken = port_problem(host, port)
        if taken is not None:
            print(f"llmhost: {taken}", file=sys.stderr)
        return PORT_TAKEN
    failed = exit_status(app)
    if failed is not None:
        return failed
    return 0 if server.started else PORT_TAKEN


def _begin_close(app: Any) -> None:
    host = getattr(app.state, "host", None)  # absent when stopped before start-up finished
    if host is not None:
        host.manager.begin_close()


def _after_graceful_shutdown(signum: int, frame: object) -> None:
    log.info("stopped on signal %d", signum)

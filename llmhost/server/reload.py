"""Re-read models.toml into a running host (SIGHUP, `llmhost reload`, POST /admin/reload)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from llmhost.config import ConfigError, load_catalog
from llmhost.preflight.model import refuse_missing
from llmhost.server.host_state import HostState

log = logging.getLogger("llmhost")


def reload_catalog(state: HostState) -> dict[str, list[str]]:
    """Apply the file's current content; an invalid edit raises ConfigError and changes nothing.

    Host options that shape the HTTP app itself (max_body_bytes, cors_origins) apply at
    the next start; everything else applies now.
    """
    catalog = state.settings.apply_to(load_catalog(Path(state.catalog.source)))
    refuse_missing(catalog)
    return state.manager.reconfigure(catalog)


def install_sighup(state: HostState) -> None:
    """Reload on SIGHUP, as daemons do. Only possible in the main thread's event loop."""

    def on_hangup() -> None:
        try:
            reload_catalog(state)
        except ConfigError as exc:
            log.error("reload refused, keeping the current configuration: %s", exc)

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup)
    except (RuntimeError, NotImplementedError, ValueError):
        log.debug("SIGHUP reload unavailable here (not the main thread); use POST /admin/reload")

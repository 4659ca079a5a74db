"""How long a request may wait for its model: the default of `max_wait_seconds`.

A request's wait has its own bound, apart from the load's (`start_timeout_seconds`), and
the scheduler never cuts it while the model is loading or waking within that load's own
bound. By default it is long enough for the worst swap the settings allow, everything
that may stand between a request and its model, each step at its own bound:

    max_hold_seconds + drain_timeout_seconds          the resident model keeps serving, then drains
  + (routes - 1) x (sleep + stop + vram_settle)       every other model goes: a sleep that fails
                                                      (standby only), the engine's shutdown, the
                                                      wait for its memory
  + wake + stop + vram_settle                         (standby only) the target's wake fails and
                                                      its engine is shut down
  + start_timeout_seconds                             the cold load

`stop` is a backend's shutdown bound (llmhost.backends.base.STOP_BOUND_SECONDS: vLLM's 30 s,
10 s for its processes to exit, 5 s after the kill); sleep and wake are 60 s each
(llmhost.lifecycle.operations). With the defaults and two routes: 30 + 60 + (45 + 20) +
300 = 455 s; with standby on: 30 + 60 + (60 + 45 + 20) + (60 + 45 + 20) + 300 = 640 s.
docs/lifecycle.md has the same arithmetic.
"""

from __future__ import annotations

from llmhost.backends.base import STOP_BOUND_SECONDS
from llmhost.config import Catalog
from llmhost.lifecycle.operations import SLEEP_TIMEOUT_SECONDS, WAKE_TIMEOUT_SECONDS


def request_wait_bound(catalog: Catalog) -> float:
    """`[host] max_wait_seconds`, or the worst swap `catalog` allows (module docstring)."""
    host = catalog.host
    if host.max_wait_seconds is not None:
        return host.max_wait_seconds
    standby = any(route.standby == "sleep" for route in catalog.routes.values())
    sleep = SLEEP_TIMEOUT_SECONDS if standby else 0.0
    shut_down = STOP_BOUND_SECONDS + host.vram_settle_seconds
    others = max(0, len(catalog.routes) - 1)
    failed_wake = WAKE_TIMEOUT_SECONDS + shut_down if standby else 0.0
    return (
        host.max_hold_seconds
        + host.drain_timeout_seconds
        + others * (sleep + shut_down)
        + failed_wake
        + host.start_timeout_seconds
    )

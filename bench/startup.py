"""Comparison 5, start-up: process start until `/healthz` answers, and until the model
list (`/openai/v1/models`) answers, for `llmhost serve` with every route of the run
configured and none loaded. vLLM's own server answers `/health` and `/v1/models` only
once its engine is up; its times come from the serving comparison's server, as a
reference.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import log
from bench.routes import Subjects
from bench.servers import start_llmhost

MIB = 1024 * 1024


def probe(name: str, subjects: Subjects, run_dir: Path) -> dict[str, float]:
    routes = [subjects.llm_a, subjects.llm_b, subjects.vision]
    server = start_llmhost(name, subjects, routes, run_dir)
    try:
        time.sleep(0.5)
        rss = server.rss_bytes()
    finally:
        stop_s = server.stop()
    log(
        f"  llmhost start-up: /healthz {server.health_s:.2f} s, model list {server.models_s:.2f} s, "
        f"idle RSS {rss / MIB:.0f} MiB, SIGTERM to exit {stop_s:.2f} s"
    )
    return {"health_s": server.health_s, "models_s": server.models_s, "rss_idle": rss, "stop_s": stop_s}

"""Section 6 (GPU only): warm standby against a cold start, on the same engine, per round.

Each round runs llmhost.gpu_check.standby on route A: a cold start (engine created as the
host creates it, first probe included), then a level-1 and a level-2 sleep and wake
(wake plus the verifying probe). The comparison is wake ÷ cold start in the same round.
Where vLLM has no sleep mode (a CPU) the section is skipped with vLLM's reason.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from bench.routes import Subjects


def run(subjects: Subjects, rounds: int) -> list[dict[str, Any]]:
    from llmhost.config import parse_catalog
    from llmhost.config.text import models_toml
    from llmhost.gpu.monitor import open_monitor
    from llmhost.gpu_check import standby as standby_check

    catalog = parse_catalog(models_toml(subjects.host, {subjects.llm_a.name: subjects.llm_a.table}))
    monitor = open_monitor()
    results: list[dict[str, Any]] = []
    try:
        for _ in range(rounds):
            (result,) = asyncio.run(standby_check.check_standby(catalog, monitor))
            if result.error is not None or not result.ok:
                raise RuntimeError(result.error or f"a wake failed: {result.levels}")
            results.append(asdict(result))
    finally:
        monitor.close()
    return results


def unavailable() -> str | None:
    """Why this machine cannot measure standby, None when it can."""
    from llmhost.backends.vllm.standby import sleep_mode_problem

    return sleep_mode_problem()

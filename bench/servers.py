"""Starting the two servers under test and timing their start-up.

- llmhost: `python -m llmhost serve --config X --port P`; it answers `/healthz` and
  the model list before any model is loaded.
- vLLM: `python -m vllm.entrypoints.openai.api_server` with the same engine arguments
  as flags; it answers `/health` and `/v1/models` only once its engine is up.

Start-up is timed from `Popen` (process start) to the first 200 of each URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench.common import Child, child_env, free_port, wait_http
from bench.routes import Route, Subjects, llmhost_argv, vllm_server_argv, write_llmhost_config


@dataclass
class Server:
    child: Child
    base_url: str
    health_s: float  # process start -> health endpoint answering
    models_s: float  # process start -> model list answering

    def rss_bytes(self) -> int:
        """Resident memory of the server process itself (not its engine children)."""
        return int(psutil.Process(self.child.pid).memory_info().rss)

    def stop(self) -> float:
        return self.child.stop()

    def last_load_s(self, route: str) -> float | None:
        """llmhost's own measure of the route's last load (`/stats`: engine and serving
        objects created, no request), to split a cold start or swap into its parts."""
        try:
            models = httpx.get(f"{self.base_url}/stats", timeout=10).json()["models"]
        except (httpx.HTTPError, ValueError, KeyError):
            return None
        for model in models:
            if model.get("route") == route:
                value = (model.get("cold_start_seconds") or {}).get("last")
                return float(value) if value is not None else None
        return None


def start_llmhost(
    name: str, subjects: Subjects, routes: list[Route], run_dir: Path, timeout: float = 120.0
) -> Server:
    config = write_llmhost_config(run_dir / f"{name}.toml", subjects, routes)
    port = free_port()
    child = Child(name, llmhost_argv(config, port), run_dir, child_env(subjects.offline))
    base = f"http://127.0.0.1:{port}"
    try:
        health = wait_http(child, f"{base}/healthz", timeout)
        models = wait_http(child, f"{base}/openai/v1/models", timeout)
    except BaseException:
        child.stop(10)
        raise
    return Server(child, base, health, models)


def start_vllm(name: str, subjects: Subjects, route: Route, run_dir: Path, timeout: float = 900.0) -> Server:
    port = free_port()
    child = Child(name, vllm_server_argv(route, port), run_dir, child_env(subjects.offline))
    base = f"http://127.0.0.1:{port}"
    try:
        health = wait_http(child, f"{base}/health", timeout, interval=0.1)
        models = wait_http(child, f"{base}/v1/models", timeout)
    except BaseException:
        child.stop(10)
        raise
    return Server(child, base, health, models)

"""Comparisons 2 and 3 on the bare engine's side, and the llmhost cold start.

- llmhost cold start: the first request on a route of a host that has loaded nothing
  yet, timed by the client from sending it to its first token. It includes importing
  vLLM (llmhost defers that to the first load so it starts in well under 2 s), creating
  the engine, vLLM's OpenAI serving objects, and the request.
- bare engine (`bench.engine_direct`, a process of its own per round): importing vLLM,
  `AsyncLLM.from_engine_args`, and the same first request; then the swap baseline,
  `shutdown()` of A and creating B until B's first token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import PYTHON, child_env, run_script
from bench.loadgen import PROMPTS, one_chat
from bench.routes import Route, Subjects
from bench.servers import Server
from bench.serving import chat_url


def llmhost_first_token(server: Server, route: Route, max_tokens: int) -> float:
    """Seconds from sending a chat to `route` until its first token (a load included)."""
    result = one_chat(chat_url(server.base_url, route.name), route.model_id, max_tokens)
    if not result.ok:
        raise RuntimeError(f"llmhost request to /{route.name} failed: {result.error}")
    return result.ttft


def _engine_spec(route: Route) -> dict[str, Any]:
    return {"model": route.model, "served_names": route.served_names or [route.model], "engine": route.engine}


def bare_engine_round(
    name: str, subjects: Subjects, run_dir: Path, max_tokens: int, swap: bool = True
) -> dict[str, Any]:
    """One bare-engine process: cold start of A, then (if `swap`) the swap to B."""
    spec = {
        "a": _engine_spec(subjects.llm_a),
        "b": _engine_spec(subjects.llm_b) if swap else None,
        "messages": [{"role": "user", "content": PROMPTS[0]}],
        "max_tokens": max_tokens,
    }
    spec_path = run_dir / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    argv = [PYTHON, "-m", "bench.engine_direct", str(spec_path)]
    return run_script(name, argv, run_dir, child_env(subjects.offline), timeout=1200)

"""vLLM's AsyncLLM itself: creating one, shutting one down, and finding its metrics.

No vLLM import at module level (vLLM takes seconds to import; the host starts without it).
`VllmBackend` (llmhost.backends.vllm.backend) drives these; the bare-engine baseline in
bench/ creates its engine here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable
from typing import Any

# The engine core needs this long to exit cleanly; vLLM's default 5 s sometimes
# ends in a force-kill on CPU.
SHUTDOWN_TIMEOUT_SECONDS = 30.0


def create_engine(model: str, served_names: Iterable[str], engine: dict[str, Any]) -> Any:
    """Create vLLM's AsyncLLM for `model` with the route's engine arguments (blocking).

    The one way llmhost creates an engine; the bare-engine baseline in bench/ calls it too.
    """
    use_spawn()
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(model=model, served_model_name=list(served_names), **engine)
    return AsyncLLM.from_engine_args(args)


def use_spawn() -> None:
    """Start vLLM's worker processes by spawning, before anything imports vLLM."""
    # spawn everywhere: vLLM itself picks it under WSL2 or once CUDA is initialized in
    # this process (the diffusion pipeline does that), fork otherwise; one start method
    # means one behaviour to test. A user's explicit choice is kept. An environment
    # variable because vLLM reads it there (vllm.envs), and no engine argument sets it.
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")


async def shutdown(engine: Any) -> None:
    """Shut a started engine down: its output handler first, then the engine core."""
    # Cancel the output handler here, on its own loop, before the engine core goes
    # away: otherwise it sees the dead engine and logs an alarming EngineDeadError
    # at every ordinary idle unload.
    handler = getattr(engine, "output_handler", None)
    if handler is not None and not handler.done():
        handler.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await handler
    await asyncio.to_thread(engine.shutdown, SHUTDOWN_TIMEOUT_SECONDS)


def vllm_collectors() -> list[Any]:
    """The `vllm:` collectors now in prometheus_client's registry (loads never overlap,
    so right after a start they are the new engine's)."""
    from prometheus_client import REGISTRY

    return [
        collector
        for collector in list(REGISTRY._collector_to_names)  # no public listing exists
        if str(getattr(collector, "_name", "")).startswith("vllm:")
    ]

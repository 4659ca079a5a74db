"""The HTTP layer alone: what each server spends per streaming chat without an engine.

`python -m bench.overhead` starts two servers, each in its own process under uvicorn
with uvloop and httptools (as `llmhost serve` and vLLM's server run):

- llmhost: `create_app` with one `llm` route whose backend is a fake: its chat serving
  returns a fixed stream of SSE chunks (the shape and count of a 32-token reply);
- vllm: vLLM's own server app (`build_app`: its middleware, routers, exception handlers
  and lifespan) with the same fake on `app.state.openai_serving_chat`.

Both validate the body with vLLM's `ChatCompletionRequest` and stream the same chunks,
so the difference in server CPU per request is what llmhost's own layers cost (body
limit, auth, model resolution, lease, disconnect watchers, stream wrappers). The sides
take turns batch by batch, as in the serving comparison. Without the engine's processes
competing for the CPU, the figures are steadier than those of `bench.run --only serving`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.common import PYTHON, Child, child_env, free_port, log, wait_http
from bench.serving import PAUSE_S, batch

MODEL = "fake-model"
TOKENS = 32
# Between two chunks. 0: each chunk still waits one turn of the event loop, as a chunk
# from the engine does, and batches are short enough to hold hundreds of requests (the
# CPU times the kernel reports move in 10 ms steps).
TOKEN_SECONDS = 0.0


async def fake_stream() -> AsyncIterator[str]:
    """What vLLM's chat serving yields for a 32-token streamed reply with usage."""
    head = f'data: {{"id":"chatcmpl-0","object":"chat.completion.chunk","created":0,"model":"{MODEL}",'
    yield head + '"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
    for _ in range(TOKENS):
        await asyncio.sleep(TOKEN_SECONDS)
        yield head + '"choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}\n\n'
    usage = f'"usage":{{"prompt_tokens":10,"completion_tokens":{TOKENS},"total_tokens":{TOKENS + 10}}}'
    yield head + '"choices":[],' + usage + "}\n\n"
    yield "data: [DONE]\n\n"


class FakeChat:
    async def create_chat_completion(self, request: Any, raw_request: Any) -> AsyncIterator[str]:
        return fake_stream()

    async def create_completion(self, request: Any, raw_request: Any) -> AsyncIterator[str]:
        return fake_stream()


class FakeBackend:
    def __init__(self, route: Any, host: Any) -> None:
        self.route = route
        self.chat = self.completion = self.responses = self.messages = FakeChat()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def failure(self) -> str | None:
        return None


def _serve(app: Any, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning"
    )
    uvicorn.Server(config).run()


def serve_llmhost(port: int) -> None:
    from llmhost.config import parse_catalog
    from llmhost.config.text import models_toml
    from llmhost.gpu.monitor import NullMonitor
    from llmhost.server.app import create_app
    from llmhost.settings import Settings

    tables = {"a": {"kind": "llm", "model": "fake/model", "served_names": [MODEL], "auth": "none"}}
    catalog = parse_catalog(models_toml({"idle_seconds": 3600}, tables), "bench-overhead.toml")
    app = create_app(
        Settings(), catalog, backend_factory=FakeBackend, gpu=NullMonitor("bench"), preflight=None
    )
    _serve(app, port)


def serve_vllm(port: int) -> None:
    from vllm.entrypoints.launchers.app import build_app
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    args = make_arg_parser(FlexibleArgumentParser()).parse_args(["--model", MODEL])
    app = build_app(args, ("generate",))
    app.state.openai_serving_chat = FakeChat()
    app.state.log_stats = False
    app.state.enable_server_load_tracking = False
    _serve(app, port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", choices=("llmhost", "vllm"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, default=6, help="batches per side and concurrency")
    parser.add_argument("--requests", type=int, default=400, help="requests per batch")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated (default 1,8)")
    args = parser.parse_args(argv)
    if args.serve == "llmhost":
        serve_llmhost(args.port)
        return 0
    if args.serve == "vllm":
        serve_vllm(args.port)
        return 0

    run_dir = Path(tempfile.mkdtemp(prefix="llmhost-overhead-"))
    sides: dict[str, tuple[str, Child]] = {}
    try:
        for name, path in (("llmhost", "/a/v1/chat/completions"), ("vllm", "/v1/chat/completions")):
            port = free_port()
            argv = [PYTHON, "-m", "bench.overhead", "--serve", name, "--port", str(port)]
            child = Child(name, argv, run_dir, child_env(True))
            ready = "/openapi.json" if name == "vllm" else "/healthz"  # vLLM's /health asks the engine
            wait_http(child, f"http://127.0.0.1:{port}{ready}", 120)
            sides[name] = (f"http://127.0.0.1:{port}{path}", child)
        for url, child in sides.values():  # warm up: the first request loads the fake
            batch(url, child.pid, MODEL, 8, 64, TOKENS)
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            cpu: dict[str, list[float]] = {name: [] for name in sides}
            rate: dict[str, list[float]] = {name: [] for name in sides}
            for i in range(args.batches):
                order = list(sides) if i % 2 == 0 else list(sides)[::-1]
                for name in order:
                    time.sleep(PAUSE_S / 4)
                    url, child = sides[name]
                    metrics = batch(url, child.pid, MODEL, concurrency, args.requests, TOKENS)
                    if metrics["errors"]:
                        raise RuntimeError(f"{name}: {metrics.get('first_error')}")
                    cpu[name].append(metrics["server_cpu_ms_per_request"])
                    rate[name].append(metrics["requests_per_s"])
            ours, theirs = statistics.median(cpu["llmhost"]), statistics.median(cpu["vllm"])
            log(
                f"c={concurrency}: server CPU ms/request llmhost {ours:.3f} vllm {theirs:.3f} "
                f"(+{ours - theirs:.3f} ms, {ours / theirs:.3f}x); req/s llmhost "
                f"{statistics.median(rate['llmhost']):.1f} vllm {statistics.median(rate['vllm']):.1f}"
            )
            log(f"  llmhost {' '.join(f'{v:.3f}' for v in cpu['llmhost'])}")
            log(f"  vllm    {' '.join(f'{v:.3f}' for v in cpu['vllm'])}")
    finally:
        for _, child in sides.values():
            child.stop(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

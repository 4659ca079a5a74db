"""GPU checks for an NVIDIA host.

    .venv/bin/python scripts/gpu_check.py --routes [models.toml] [--only coder,vision] [--json out.json]

loads each route of models.toml in turn through the real host (exclusive, idle unload
after 2 s) and prints per route: load seconds, GPU memory used (NVML), the budget the
host gave the engine, first-token latency of a warm streaming request (image routes:
seconds for one 512x512 image), and the free GPU memory after the unload. Exits 1 when
a route fails. `--tiny` runs the same on the demo's tiny models (no download, any
machine: on a CPU the memory columns say NVML is absent). See docs/gpu.md.

    .venv/bin/python scripts/gpu_check.py --standby [models.toml] [--only coder] [--json out.json]

measures warm standby (docs/standby.md) per llm route: cold start, then for sleep levels
1 and 2 the sleep, the GPU memory it frees (NVML), the host RAM it holds, the wake and
whether the probe after the wake matches the one after the cold start. Where vLLM has
no sleep mode (`--tiny` on a CPU) it reports standby as unavailable, with vLLM's reason.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/gpu_check.py --vision-cycles [--size 128] [--cycles 3]

swaps two tiny SD3 pipelines three times and prints NVML's free memory at each step as
JSON: the in-process pipeline's memory comes back after every unload.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from llmhost.config import Catalog, ConfigError, parse_catalog
from llmhost.gpu.monitor import GpuMonitor, open_monitor
from llmhost.server.app import create_app
from llmhost.settings import Settings
from llmhost.tiny_models import ensure_tiny_models
from llmhost.units import GIB


async def vision_cycles(size: int, cycles: int, monitor: GpuMonitor) -> dict[str, Any]:
    sd3 = ensure_tiny_models().sd3
    routes = "\n".join(
        f'[routes.{name}]\nkind = "diffusion"\nmodel = "{sd3}"\nserved_names = ["{name}-model"]\n'
        f"[routes.{name}.pipeline]\nmax_edge = {size}\ndefault_steps = 2"
        for name in ("vision", "vision2")
    )
    catalog = parse_catalog(f'[host]\nidle_seconds = 2\npolicy = "exclusive"\n{routes}')
    app = create_app(Settings(_env_file=None), catalog, gpu=monitor)  # type: ignore[call-arg]
    steps: list[dict[str, Any]] = []

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gpu-check", timeout=300) as client:

            async def note(step: str) -> None:
                stats = (await client.get("/stats")).json()
                memory = monitor.memory()
                assert memory is not None
                steps.append(
                    {
                        "step": step,
                        "nvml_free_gib": round(memory.free_bytes / GIB, 3),
                        "states": {m["route"]: m["state"] for m in stats["models"]},
                        "measured_gib": {
                            m["route"]: round(m["memory_bytes"] / GIB, 3) if m["memory_bytes"] else None
                            for m in stats["models"]
                        },
                    }
                )

            await note("start")
            for cycle in range(1, cycles + 1):
                for route in ("vision", "vision2"):
                    started = time.monotonic()
                    reply = await client.post(
                        f"/{route}/generate",
                        json={"prompt": "a red fox", "width": size, "height": size, "seed": 1},
                    )
                    reply.raise_for_status()
                    await note(f"cycle {cycle}: {route} generated in {time.monotonic() - started:.2f} s")
                for _ in range(120):  # idle_seconds is 2: both are gone within seconds
                    models = (await client.get("/stats")).json()["models"]
                    if all(m["state"] == "stopped" for m in models):
                        break
                    await asyncio.sleep(0.5)
                await note(f"cycle {cycle}: both idle-unloaded")
    gpu = {"name": monitor.name}
    monitor.close()
    return {"gpu": gpu, "size": size, "steps": steps}


# A check over routes, and what it gives: every route passed, the table, the JSON report.
Outcome = tuple[bool, str, dict[str, Any]]
RouteCheck = Callable[[Settings, Catalog, GpuMonitor], Coroutine[Any, Any, Outcome]]


def run_on_routes(args: argparse.Namespace, config: Path | None, check: RouteCheck) -> int:
    """Load models.toml (or the demo's), keep the --only routes, run `check`, print its
    table and write its JSON; exit 1 when a route failed, 2 on a bad file."""
    from llmhost.cli import load
    from llmhost.cli.demo import write_demo_config
    from llmhost.gpu_check.routes import check_catalog

    try:
        settings, catalog = load(write_demo_config() if args.tiny else config)
        catalog = check_catalog(catalog, args.only.split(",") if args.only else None)
    except (ConfigError, ValueError) as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2
    settings.export_cache_dir()
    monitor = open_monitor()
    try:
        ok, table, report = asyncio.run(check(settings, catalog, monitor))
        print(table, flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    finally:
        monitor.close()
    return 0 if ok else 1


def check_routes(args: argparse.Namespace) -> int:
    from llmhost.gpu_check import routes

    async def check(settings: Settings, catalog: Catalog, monitor: GpuMonitor) -> Outcome:
        size = 64 if args.tiny else args.image_size
        results = await routes.run_checks(settings, catalog, monitor, image_size=size)
        ok = all(r.ok for r in results)
        return ok, routes.render(results, monitor), routes.to_json(results, monitor)

    return run_on_routes(args, args.routes, check)


def check_standby(args: argparse.Namespace) -> int:
    from llmhost.gpu_check import standby

    async def check(settings: Settings, catalog: Catalog, monitor: GpuMonitor) -> Outcome:
        results = await standby.check_standby(catalog, monitor)
        ok = all(r.ok for r in results)
        return ok, standby.render(results, monitor), standby.to_json(results, monitor)

    return run_on_routes(args, args.standby, check)


def another_llmhost() -> str | None:
    """Why the check must not start: an llmhost (the service, usually) answers on the
    configured port or holds the GPU. Its models would share the card with ours, and the
    service reads its own cache, not the one this user's check would fill."""
    from llmhost.cli.loading import settings_from_env
    from llmhost.gpu_check.running import another_llmhost as running

    try:
        settings = settings_from_env()  # LLMHOST_HOST and LLMHOST_PORT, from the environment or .env
    except ConfigError as exc:
        return str(exc)
    refusal = running(settings.llmhost_host, settings.llmhost_port)
    if refusal is None:
        return None
    return (
        f"{refusal} Then run the check as the service's user, so that it reads the service's "
        "cache (docs/gpu.md)."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--routes",
        nargs="?",
        const=None,
        default=argparse.SUPPRESS,
        type=Path,
        metavar="MODELS_TOML",
        help="check every route of this file (default: LLMHOST_CONFIG or ./models.toml)",
    )
    parser.add_argument(
        "--standby",
        nargs="?",
        const=None,
        default=argparse.SUPPRESS,
        type=Path,
        metavar="MODELS_TOML",
        help="measure warm standby (sleep and wake) per llm route of this file",
    )
    parser.add_argument("--tiny", action="store_true", help="with --routes/--standby: the demo's tiny models")
    parser.add_argument("--only", help="with --routes/--standby: comma-separated route names")
    parser.add_argument("--image-size", type=int, default=512, help="with --routes: image edge in pixels")
    parser.add_argument("--json", help="with --routes/--standby: also write the results to this JSON file")
    parser.add_argument("--vision-cycles", action="store_true", help="the diffusion VRAM swap check")
    parser.add_argument("--size", type=int, default=128)  # the tiny SD3 stops at 192
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    refusal = another_llmhost()
    if refusal is not None:
        print(f"gpu_check: {refusal}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if "standby" in args:
        return check_standby(args)
    if "routes" in args or args.tiny:
        if "routes" not in args:
            args.routes = None
        return check_routes(args)
    if not args.vision_cycles:
        parser.error("say what to check: --routes [models.toml] (or --tiny), or --vision-cycles")
    monitor = open_monitor()
    if monitor.memory() is None:
        raise SystemExit(f"no NVML: {monitor.unavailable_reason}")
    print(json.dumps(asyncio.run(vision_cycles(args.size, args.cycles, monitor)), indent=2))
    return 0


if __name__ == "__main__":
    from llmhost.cli.main import quick_exit

    quick_exit(main())

"""GPU checks for an NVIDIA host: NVML readings and VRAM coming back after image-model unloads.

Runs the real app in-process with the real NVML monitor and two diffusion routes on the
tiny SD3 pipeline (no download): loads one, swaps to the other (exclusive), lets both
idle out, three times, and prints what NVML and /stats said at each step as JSON.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/gpu_check.py [--size 128] [--cycles 3]

vLLM's CUDA engines are not exercised here (see bench/ for that, with real models).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from typing import Any

import httpx

from llmhost.app import create_app
from llmhost.config import parse_catalog
from llmhost.gpu import GIB, GpuMonitor, open_monitor
from llmhost.settings import Settings
from llmhost.tiny_models import ensure_tiny_models


async def run(size: int, cycles: int, monitor: GpuMonitor) -> dict[str, Any]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128)  # the tiny SD3 stops at 192
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    monitor = open_monitor()
    if monitor.memory() is None:
        raise SystemExit(f"no NVML: {monitor.unavailable_reason}")
    print(json.dumps(asyncio.run(run(args.size, args.cycles, monitor)), indent=2))


if __name__ == "__main__":
    main()

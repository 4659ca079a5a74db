"""llmhost against the bare engines, side by side: `python -m bench.run`.

Runs every comparison in one go on this machine, alternating the two sides, several
rounds, and writes `results.json` and `results.md` to `--out` (default bench/results):

1. serving overhead   llmhost route vs vLLM's OpenAI server, streaming chat, c = 1, 8, 32
2. cold start         first request on a cold llmhost route vs AsyncLLM created directly
3. swap               request to B while A is resident (exclusive) vs A.shutdown + create B
4. vision             /vision/generate vs the diffusers pipeline called directly
5. start-up           process start until /healthz and the model list answer
6. memory             host RSS with nothing loaded, and its growth over N load/unload cycles

Default: the tiny local models (CPU or GPU). `--config models.toml`: that file's first
two llm routes and first diffusion route (or `--routes A,B,VISION`), on an NVIDIA host.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import coldstart, loadgen, machine, memory, serving, standby, startup, vision
from bench.common import REPO, Samples, log
from bench.report import Metric, Target, write
from bench.routes import Subjects, config_subjects, tiny_subjects
from bench.servers import Server, start_llmhost, start_vllm

MIB = 1024 * 1024
SECTIONS = ("startup", "serving", "coldstart", "swap", "vision", "memory", "standby")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, fewer requests, 4 memory cycles")
    parser.add_argument("--config", type=Path, help="models.toml with real models (GPU host)")
    parser.add_argument("--routes", help="A,B,VISION: the routes of --config to use")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where results go")
    parser.add_argument("--rounds", type=int, help="rounds per comparison (default 3; --quick 1)")
    parser.add_argument("--cycles", type=int, help="memory load/unload cycles (default 20; --quick 4)")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per chat reply (default 32)")
    parser.add_argument(
        "--vision-size", type=int, help="image width and height (tiny: 128, 192 on a GPU; config: 1024)"
    )
    parser.add_argument("--vision-steps", type=int, help="denoising steps (tiny: 8, 28 on a GPU; config: 28)")
    parser.add_argument(
        "--pin-client",
        type=int,
        default=-1,
        help="CPU the load generator runs on while sending requests (default: the last CPU on "
        "machines with 4 cores or fewer, none on bigger ones; -2: never pin)",
    )
    parser.add_argument(
        "--only", help=f"comma-separated subset of: {', '.join(SECTIONS)} (coldstart runs with serving)"
    )
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.cycles = args.cycles or (4 if args.quick else 20)
    args.only = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = args.only - set(SECTIONS)
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(sorted(unknown))}")
    if "coldstart" in args.only:
        args.only.add("serving")
    if "memory" in args.only or "swap" in args.only:
        args.only |= {"memory", "swap"}
    return args


class Runner:
    def __init__(self, args: argparse.Namespace, subjects: Subjects, run_dir: Path, gpu: bool) -> None:
        self.args = args
        self.gpu = gpu
        self.subjects = subjects
        self.run_dir = run_dir
        self.data: dict[str, Any] = {}
        self.phase_seconds: dict[str, float] = {}
        self.skipped: dict[str, str] = {}
        self.failed: dict[str, str] = {}

    def phase(self, name: str, work: Callable[[], None]) -> None:
        log(f"== {name}")
        started = time.perf_counter()
        try:
            work()
        except Exception as exc:
            log(f"{name} FAILED: {type(exc).__name__}: {exc}")
            self.failed[name] = f"{type(exc).__name__}: {str(exc)[:2000]}"
            (self.run_dir / f"failed-{name}.txt").write_text(traceback.format_exc())
        self.phase_seconds[name] = round(time.perf_counter() - started, 1)
        log(f"== {name} done in {self.phase_seconds[name]:.0f} s")

    # ---- 5. start-up --------------------------------------------------------------------

    def startup(self) -> None:
        self.data["startup"] = [
            startup.probe(f"llmhost-startup-{r + 1}", self.subjects, self.run_dir)
            for r in range(self.args.rounds)
        ]

    # ---- 1 and 2. serving and cold start, with the bare engine's cold start and swap -----

    def serving_rounds(self) -> None:
        s, args = self.subjects, self.args
        load = serving.quick_load(args.max_tokens) if args.quick else serving.full_load(args.max_tokens)
        rounds: list[dict[str, Any]] = []
        self.data["serving_rounds"] = rounds
        vllm_server = start_vllm("vllm-server", s, s.llm_a, self.run_dir)
        started = {"health_s": vllm_server.health_s, "models_s": vllm_server.models_s}
        self.data["vllm_server_startup"] = started
        log(f"  vLLM server up: /health {started['health_s']:.1f} s, /v1/models {started['models_s']:.1f} s")
        try:
            for r in range(args.rounds):
                record: dict[str, Any] = {}
                rounds.append(record)
                engine_first = r % 2 == 1
                log(f"-- round {r + 1}/{args.rounds}")
                if engine_first:
                    record["engine"] = self._engine_round(r)
                record.update(self._llmhost_round(r, load, vllm_server))
                if not engine_first:
                    record["engine"] = self._engine_round(r)
        finally:
            vllm_server.child.kill()

    def _engine_round(self, r: int) -> dict[str, Any]:
        bare = coldstart.bare_engine_round(
            f"engine-direct-{r + 1}", self.subjects, self.run_dir, self.args.max_tokens
        )
        log(
            f"  engine   cold start {bare['cold_start_s']:.2f} s "
            f"(import {bare['import_s']:.2f} s), swap {bare['swap_s']:.2f} s"
        )
        return bare

    def _llmhost_round(self, r: int, load: serving.Load, vllm: Server) -> dict[str, Any]:
        """A fresh llmhost: its cold start, then serving, batches alternating with vLLM's."""
        s = self.subjects
        server = start_llmhost(f"llmhost-serving-{r + 1}", s, [s.llm_a], self.run_dir)
        try:
            cold = coldstart.llmhost_first_token(server, s.llm_a, self.args.max_tokens)
            load_s = server.last_load_s(s.llm_a.name)
            log(f"  llmhost  cold start {cold:.2f} s (load {load_s} s; /healthz at {server.health_s:.2f} s)")
            sides = {
                "llmhost": (serving.chat_url(server.base_url, s.llm_a.name), server.child.pid),
                "vllm": (serving.chat_url(vllm.base_url, None), vllm.child.pid),
            }
            batches = serving.measure(sides, s.llm_a.model_id, load, first=r)
        finally:
            server.child.kill()
        return {
            "llmhost": {
                "cold_start_s": cold,
                "load_s": load_s,
                "health_s": server.health_s,
                "models_s": server.models_s,
            },
            "batches": batches,
        }

    # ---- 6 and 3. memory cycles and llmhost's swaps -----------------------------------------

    def memory(self) -> None:
        result = memory.run(self.subjects, self.run_dir, self.args.cycles, self.args.max_tokens)
        self.data["memory"] = {
            "health_s": result.health_s,
            "models_s": result.models_s,
            "rss_idle": result.rss_idle,
            "cold_start_s": result.cold_start_s,
            "rss": result.rss,
            "swaps_s": result.swaps_s,
            "loads_s": result.loads_s,
            "growth": result.growth,
        }

    # ---- 4. vision ---------------------------------------------------------------------------

    def vision(self) -> None:
        tiny = self.subjects.source == "tiny"
        # The tiny pipeline draws at most 192 px; on CPU 128 px and 8 steps take ~1 s.
        size = self.args.vision_size or ((192 if self.gpu else 128) if tiny else 1024)
        steps = self.args.vision_steps or ((28 if self.gpu else 8) if tiny else 28)
        job = vision.Job(size, size, steps)
        per_round = 3 if self.args.quick or not tiny else 4
        self.data["vision"] = {"job": job.body(0) | {"seed": "1000+i"}, "per_round": per_round}
        self.data["vision"].update(vision.run(self.subjects, self.run_dir, job, self.args.rounds, per_round))

    # ---- results ----------------------------------------------------------------------------

    # ---- 6. warm standby (GPU only) -------------------------------------------------------

    def standby(self) -> None:
        self.data["standby"] = standby.run(self.subjects, self.args.rounds)

    def _standby_metrics(self) -> list[Metric]:
        rounds = self.data.get("standby", [])
        if not rounds:
            return []
        cold = Samples([r["cold_start_seconds"] for r in rounds])
        out = []
        for level in (1, 2):
            wakes = Samples([x["wake_seconds"] for r in rounds for x in r["levels"] if x["level"] == level])
            out.append(
                Metric(
                    "6",
                    f"standby: level-{level} wake + probe vs cold start (route A)",
                    "s",
                    wakes,
                    cold,
                    "cold start",
                    Target("ratio_max", 0.25),
                    note="same engine, same round; the probe after every wake matched",
                )
            )
        return out

    def metrics(self) -> list[Metric]:
        out: list[Metric] = []
        d = self.data
        rounds = d.get("serving_rounds", [])
        batches = [r["batches"] for r in rounds if "batches" in r]
        if batches:
            for c in batches[0]["llmhost"]:
                for key, name, unit, scale, target in (
                    ("requests_per_s", "requests/s", "req/s", 1.0, Target("ratio_min", 0.95)),
                    ("output_tokens_per_s", "output tokens/s", "tok/s", 1.0, Target("ratio_min", 0.95)),
                    ("ttft_p50_s", "TTFT p50", "ms", 1000.0, Target("ratio_max", 1.10)),
                    ("ttft_p95_s", "TTFT p95", "ms", 1000.0, None),
                    ("server_cpu_ms_per_request", "server process CPU per request", "ms", 1.0, None),
                ):
                    host = Samples([m[key] * scale for b in batches for m in b["llmhost"][c]])
                    base = Samples([m[key] * scale for b in batches for m in b["vllm"][c]])
                    out.append(Metric("1", f"serving c={c}: {name}", unit, host, base, "vllm", target))
        cold_host = Samples([r["llmhost"]["cold_start_s"] for r in rounds if "llmhost" in r])
        cold_base = Samples([r["engine"]["cold_start_s"] for r in rounds if "engine" in r])
        if cold_host.values or cold_base.values:
            out.append(
                Metric(
                    "2",
                    "cold start: first request to first token (vLLM import included)",
                    "s",
                    cold_host,
                    cold_base,
                    "engine",
                    Target("ratio_max", 1.10),
                )
            )
            out.append(
                Metric(
                    "2",
                    "cold start without the vLLM import (engine: create + first token)",
                    "s",
                    Samples(),
                    Samples([r["engine"]["cold_start_no_import_s"] for r in rounds if "engine" in r]),
                    "engine",
                    note="for reference: the engine's own share of a cold start",
                )
            )
        swap_base = Samples(
            [r["engine"]["swap_s"] for r in rounds if "engine" in r and "swap_s" in r["engine"]]
        )
        mem = d.get("memory")
        if mem or swap_base.values:
            out.append(
                Metric(
                    "3",
                    "swap A→B (exclusive): B's first token",
                    "s",
                    Samples(list(mem["swaps_s"])) if mem else Samples(),
                    swap_base,
                    "engine",
                    Target("ratio_max", 1.10),
                    note="llmhost: every swap of the memory cycles; engine: shutdown(A) + create(B) + "
                    "first token, one per round",
                )
            )
        vis = d.get("vision")
        if vis and vis.get("llmhost"):
            job = vis["job"]
            out.append(
                Metric(
                    "4",
                    f"vision {job['width']}x{job['height']}, {job['num_inference_steps']} steps: "
                    "seconds per image",
                    "s",
                    Samples(vis["llmhost"]),
                    Samples(vis["direct"]),
                    "pipeline",
                    Target("ratio_max", 1.05),
                )
            )
        probes = d.get("startup", [])
        vllm_start = d.get("vllm_server_startup")
        if probes:
            out.append(
                Metric(
                    "5",
                    "start-up: process start to /healthz",
                    "s",
                    Samples([p["health_s"] for p in probes]),
                    Samples([vllm_start["health_s"]]) if vllm_start else None,
                    "vllm",
                    Target("max", 2.0),
                    note="vLLM's server answers /health only once its engine is loaded",
                )
            )
            out.append(
                Metric(
                    "5",
                    "start-up: process start to the model list",
                    "s",
                    Samples([p["models_s"] for p in probes]),
                    Samples([vllm_start["models_s"]]) if vllm_start else None,
                    "vllm",
                )
            )
        if mem:
            idle = [p["rss_idle"] / MIB for p in probes] + [mem["rss_idle"] / MIB]
            out.append(Metric("6", "host RSS, nothing loaded", "MiB", Samples(idle)))
            rss = mem["rss"]
            out.append(
                Metric(
                    "6",
                    f"host RSS growth over {len(rss) - 1} load/unload cycles "
                    f"({rss[0] / MIB:.0f} → {rss[-1] / MIB:.0f} MiB)",
                    "%",
                    Samples([100.0 * mem["growth"]]),
                    target=Target("max", 5.0),
                )
            )
        out += self._standby_metrics()
        return out


def _client_cpu(choice: int) -> int | None:
    """-1: the last usable CPU on a small machine (vLLM's CPU backend binds its worker to the
    first cores), else none; -2: none; N: CPU N."""
    if choice == -2 or not hasattr(os, "sched_getaffinity"):
        return None
    if choice >= 0:
        return choice
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-1] if 1 < len(cpus) <= 4 else None


def _subjects_text(subjects: Subjects) -> str:
    d = subjects.describe()
    engine = ", ".join(f"{k}={v}" for k, v in d["llm_a"]["engine"].items())
    return (
        f"A = `{d['llm_a']['model']}`, B = `{d['llm_b']['model']}` (engine: {engine}); "
        f"vision = `{d['vision']['model']}`"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_wall = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    started = time.perf_counter()
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    if args.config:
        subjects = config_subjects(args.config, args.routes.split(",") if args.routes else None)
    else:
        subjects = tiny_subjects()
    run_dir = Path(tempfile.mkdtemp(prefix="llmhost-bench-"))
    log(f"logs of every process: {run_dir}")
    info = machine.describe()
    if info["load_average_at_start"][0] > 0.5:
        log(f"warning: load average {info['load_average_at_start']}: other work will skew the numbers")
    runner = Runner(args, subjects, run_dir, gpu=bool(info["gpus"]))
    loadgen.PIN_CPU = _client_cpu(args.pin_client)
    info["load_generator_cpu"] = loadgen.PIN_CPU
    if loadgen.PIN_CPU is not None:
        log(f"load generator pinned to CPU {loadgen.PIN_CPU} while it sends requests")
    has_vllm = importlib.util.find_spec("vllm") is not None
    has_diffusers = importlib.util.find_spec("diffusers") is not None
    llm_sections = {"serving": runner.serving_rounds, "memory": runner.memory}
    if "startup" in args.only:
        runner.phase("startup", runner.startup)
    for name, work in llm_sections.items():
        if name not in args.only:
            continue
        if not has_vllm:
            runner.skipped[name] = "vLLM is not installed in this environment"
            continue
        runner.phase(name, work)
    if "standby" in args.only:
        why_not = standby.unavailable() if has_vllm else "vLLM is not installed in this environment"
        if why_not is None:
            runner.phase("standby", runner.standby)
        else:
            runner.skipped["standby"] = why_not
    if "vision" in args.only:
        if has_diffusers:
            runner.phase("vision", runner.vision)
        else:
            runner.skipped["vision"] = "diffusers is not installed in this environment"
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    total = time.perf_counter() - started
    title = "tiny models" if subjects.source == "tiny" else f"models from {subjects.source}"
    if info["gpus"]:
        title += f" on {info['gpus'][0]['name']}"
    else:
        title += " on CPU"
    run: dict[str, Any] = {
        "title": title,
        "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": started_wall,
        "total_seconds": total,
        "rounds": args.rounds,
        "memory_cycles": args.cycles,
        "max_tokens": args.max_tokens,
        "machine": info,
        "subjects": subjects.describe(),
        "subjects_text": _subjects_text(subjects),
        "phase_seconds": runner.phase_seconds,
        "skipped": runner.skipped,
        "failed": runner.failed,
        "logs": "(a temporary directory, printed by the run)",
        "raw": runner.data,
    }
    run = _tidy(run)
    metrics = runner.metrics()
    json_path, md_path = write(args.out, run, metrics)
    print((args.out / "results.md").read_text(), flush=True)
    log(f"total {total:.0f} s; wrote {json_path} and {md_path}; logs in {run_dir}")
    if runner.failed:
        log(f"failed: {json.dumps(runner.failed)[:2000]}")
        return 1
    return 0


def _tidy(value: Any) -> Any:
    """Results are committed: write paths relative to the repo or the home directory."""
    if isinstance(value, str):
        return value.replace(f"{Path.cwd()}/", "").replace(str(Path.home()), "~")
    if isinstance(value, dict):
        return {key: _tidy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tidy(item) for item in value]
    return value


if __name__ == "__main__":
    sys.exit(main())

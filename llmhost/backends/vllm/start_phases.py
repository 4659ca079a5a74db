"""Where a cold start's seconds go, in vLLM's own words.

vLLM logs each phase of an engine start with its own timing: the weights ("Loading
weights took 4.21 seconds", "Model loading took 8.2 GiB memory and 6.3 seconds"),
torch.compile ("Directly load the compiled graph(s) ... from the cache" or "Compiling a
graph ... takes", then "torch.compile took 21.4 s in total"), the KV cache ("Available KV
cache memory: 3.9 GiB", "GPU KV cache size: 72,880 tokens"), CUDA-graph capture ("Graph
capturing finished in 9 secs, took 0.48 GiB") and the whole profile/KV/warm-up step
("init engine (profile, create kv cache, warmup model) took 31.2 s"). The host reads
those figures; it does not time the phases itself.

Those records are written in the engine's own processes (the engine core and, on GPUs,
its worker), not in the host's, and the host only sees what they send back at the end.
So the logging configuration each engine gets (vLLM's `LoggingConfig`, applied in every
one of its processes; llmhost.backends.vllm.failure) also sends the INFO records of
the few vLLM loggers that carry phases to a file of the host's, with each record's time
and process. After the start the host reads that file (`read`). Console output is
unchanged: those loggers pass INFO on to vLLM's own handler, which filters by the
user's level as before.

One phase is not vLLM's figure but the time of its first record: `engine_process`, from
the load's start to the engine core's first line (spawning the process, importing
Python, torch and vLLM, reading the model's config): on a CPU most of a tiny model's
start.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The vLLM 0.32 loggers whose INFO records carry the phases (their modules).
PHASE_LOGGERS = (
    "vllm.v1.engine.core",  # the engine core's first record; "init engine ... took"
    "vllm.model_executor.model_loader.base_loader",  # "Initializing model took"
    "vllm.model_executor.model_loader.default_loader",  # "Loading weights took"
    "vllm.v1.worker.gpu_model_runner",  # "Model loading took"; "Graph capturing finished"
    "vllm.v1.worker.gpu.model_runner",  # the same, in vLLM's second model runner
    "vllm.v1.worker.cpu_model_runner",  # "Starting to load model" on the CPU backend
    "vllm.compilation.backends",  # Dynamo; compiled graphs compiled or loaded from the cache
    "vllm.compilation.monitor",  # "torch.compile took"; the profile run
    "vllm.compilation.decorators",  # the compiled model saved to, or loaded from, vLLM's cache
    "vllm.v1.worker.gpu_worker",  # "Available KV cache memory"
    "vllm.v1.worker.cpu_worker",  # "Explicitly set (...) GiB for KV cache"
    "vllm.v1.core.kv_cache_utils",  # "KV cache size: N tokens"; an auto-fitted max_model_len
)
# Each record as one line: its time, its process, its message.
_FORMAT = "%(created).3f|%(processName)s|%(message)s"
_RECORD = re.compile(r"^(?P<created>\d+\.\d{3})\|(?P<process>[^|]*)\|(?P<message>.*)$")
_NUMBER = r"([\d.]+)"


@dataclass(frozen=True)
class Phase:
    """One phase of a start: vLLM's seconds and GiB for it, and what else it said."""

    phase: str
    seconds: float | None = None
    gib: float | None = None
    detail: str | None = None


def add_capture(config: dict[str, Any], phase_log: Path, user_level: str) -> None:
    """Send the phase loggers' INFO records to `phase_log` in the dictConfig `config`
    (vLLM's logging set-up, or the user's). Their level becomes INFO (DEBUG where the user
    asked for it), and they still propagate to vLLM's handler, which keeps the user's level."""
    config.setdefault("formatters", {})["llmhost_phases"] = {"format": _FORMAT}
    config.setdefault("handlers", {})["llmhost_phases"] = {
        "class": "logging.FileHandler",
        "filename": str(phase_log),
        "level": "INFO",
        "formatter": "llmhost_phases",
        "delay": True,
    }
    level = "DEBUG" if user_level.upper() == "DEBUG" else "INFO"
    loggers = config.setdefault("loggers", {})
    for name in PHASE_LOGGERS:
        entry = loggers.setdefault(name, {"level": level, "propagate": True})
        entry["handlers"] = [*entry.get("handlers", []), "llmhost_phases"]


def phase_log_for(failure_log: Path) -> Path:
    """The phase file beside an engine's failure log (llmhost.backends.vllm.failure)."""
    return failure_log.with_name(failure_log.stem + ".phases.log")


@dataclass(frozen=True)
class _Record:
    created: float
    process: str
    message: str


# message pattern -> the phase it gives. Each reads vLLM 0.32's wording (the module in
# PHASE_LOGGERS that logs it); a record that matches none is not a phase.
_Reader = Callable[[re.Match[str]], Phase]
_READERS: tuple[tuple[re.Pattern[str], _Reader], ...] = (
    (re.compile(rf"Initializing model took {_NUMBER} seconds"), lambda m: Phase("model_init", float(m[1]))),
    (re.compile(rf"Loading weights took {_NUMBER} seconds"), lambda m: Phase("weights", float(m[1]))),
    (
        re.compile(rf"Model loading took {_NUMBER} GiB memory and {_NUMBER} seconds"),
        lambda m: Phase("model_load", float(m[2]), float(m[1]), "weights on the GPU"),
    ),
    (
        re.compile(rf"Dynamo bytecode transform time: {_NUMBER} s"),
        lambda m: Phase("dynamo", float(m[1]), None, "torch.compile's bytecode capture"),
    ),
    (
        re.compile(
            rf"Directly load the compiled graph\(s\) for compile range (.+) from the cache, took {_NUMBER} s"
        ),
        lambda m: Phase("compile_cache", float(m[2]), None, f"cache hit (range {m[1]})"),
    ),
    (
        re.compile(rf"Compiling a graph for compile range (.+) takes {_NUMBER} s"),
        lambda m: Phase("compile_cache", float(m[2]), None, f"cache miss: compiled (range {m[1]})"),
    ),
    (re.compile(rf"torch\.compile took {_NUMBER} s in total"), lambda m: Phase("torch_compile", float(m[1]))),
    (
        re.compile(r"Directly load AOT compilation from path"),
        lambda m: Phase("compile_cache", None, None, "cache hit: the compiled model read from vLLM's cache"),
    ),
    (
        re.compile(r"saved AOT compiled function to"),
        lambda m: Phase("compile_cache", None, None, "cache miss: compiled, and saved for the next start"),
    ),
    (
        re.compile(rf"Initial profiling/warmup run took {_NUMBER} s"),
        lambda m: Phase("profile_run", float(m[1]), None, "the profile run that sizes the KV cache"),
    ),
    (
        re.compile(rf"Available KV cache memory: {_NUMBER} GiB"),
        lambda m: Phase("kv_cache", None, float(m[1]), "left for the KV cache after profiling"),
    ),
    (
        re.compile(rf"Explicitly set \({_NUMBER}/{_NUMBER}\) GiB for KV cache"),
        lambda m: Phase("kv_cache", None, float(m[1]), "kv_cache_memory_bytes"),
    ),
    (
        re.compile(
            r"KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x"
        ),
        lambda m: Phase("kv_cache_size", None, None, f"{m[1]} tokens; {m[3]}x requests of {m[2]} tokens"),
    ),
    (
        re.compile(r"Auto-fit max_model_len: reduced from (\d+) to (\d+)"),
        lambda m: Phase("max_model_len_fit", None, None, f"vLLM fitted max_model_len from {m[1]} to {m[2]}"),
    ),
    (
        re.compile(rf"Graph capturing finished in {_NUMBER} secs, took {_NUMBER} GiB"),
        lambda m: Phase("cuda_graphs", float(m[1]), float(m[2]), "CUDA-graph capture"),
    ),
    (
        re.compile(rf"init engine \(profile, create kv cache, warmup model\) took {_NUMBER} s(?: \((.*)\))?"),
        lambda m: Phase(
            "engine_init",
            float(m[1]),
            None,
            "profile run, KV cache, warm-up" + (f"; {m[2]}" if m[2] else ""),
        ),
    ),
)
# The engine core's first record: a new engine (each start of a retried one, too).
_ENGINE_BEGINS = "Initializing a V1 LLM engine"
# The model runner's first record, in the worker (the engine core's own process on one
# GPU; a process of its own on the CPU backend and with tensor parallelism).
_LOAD_BEGINS = "Starting to load model"
# The engine core's last start-up record: it is ready to serve.
_ENGINE_READY = "init engine (profile, create kv cache, warmup model) took"
# Phases vLLM brackets with two records and no figure of its own: their seconds are the
# time between the two (name, first record, second record, what it is).
_SPANS = (
    (
        "compile_warmup",
        "Warming up model for the compilation",
        "Warming up done",
        "torch.compile and the warm-up runs (CPU backend)",
    ),
)


class Attempts:
    """`create` (an engine start), remembering when each call began: a start that vLLM
    refused and the host retried (llmhost.backends.vllm.context_fit) is two."""

    def __init__(
        self, create: Callable[[dict[str, Any]], Any], clock: Callable[[], float] = time.time
    ) -> None:
        self._create = create
        self._clock = clock  # wall clock: vLLM's records carry wall-clock times
        self.started: list[float] = []

    def __call__(self, engine: dict[str, Any]) -> Any:
        self.started.append(self._clock())
        return self._create(engine)

    def phases(self, phase_log: Path) -> tuple[Phase, ...]:
        """The phases of the start that served, after the time a refused one took."""
        if not self.started:
            return ()
        refused: tuple[Phase, ...] = ()
        if len(self.started) > 1:
            seconds = round(self.started[-1] - self.started[0], 2)
            refused = (Phase("refused_start", seconds, None, "a start vLLM refused for its max_model_len"),)
        return refused + read(phase_log, self.started[-1])


def read(phase_log: Path, started_at: float) -> tuple[Phase, ...]:
    """The phases of the last engine start recorded in `phase_log`, in the order vLLM
    logged them; `started_at` (wall clock) is when the load began. Empty when the file
    is missing or holds none."""
    try:
        text = phase_log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    records = list(_records(text.splitlines()))
    begins = [i for i, r in enumerate(records) if r.message.startswith(_ENGINE_BEGINS)]
    if begins:
        records = records[begins[-1] :]  # a start retried (llmhost.backends.vllm.context_fit): its last try
    phases: list[Phase] = []
    if begins:
        phases.append(
            Phase(
                "engine_process",
                round(max(0.0, records[0].created - started_at), 2),
                None,
                "from the load's start to the engine core's first record: process spawn, imports, config",
            )
        )
    opened: dict[str, float] = {}
    for record in records:
        for name, first, second, detail in _SPANS:
            if record.message.startswith(first):
                opened[name] = record.created
            elif record.message.startswith(second) and name in opened:
                phases.append(Phase(name, round(record.created - opened.pop(name), 2), None, detail))
        if begins and record.message.startswith(_LOAD_BEGINS):
            core = records[0]
            separate = record.process != core.process
            phases.append(
                Phase(
                    "worker_setup",
                    round(max(0.0, record.created - core.created), 2),
                    None,
                    "the worker process starting, then its device set-up"
                    if separate
                    else "device set-up (the CUDA context) before the model loads",
                )
            )
        for pattern, reader in _READERS:
            match = pattern.search(record.message)
            if match is not None:
                phases.append(reader(match))
                break
        if record.message.startswith(_ENGINE_READY):
            phases.append(
                Phase(
                    "engine_ready",
                    round(max(0.0, record.created - started_at), 2),
                    None,
                    "from the load's start to the engine's last start-up record (the rest of the "
                    "cold start is the host's: the handshake, vLLM's serving objects, the probe)",
                )
            )
    return tuple(phases)


def _records(lines: Iterable[str]) -> Iterable[_Record]:
    """Records of the phase file; a message's further lines (rare) are left out."""
    for line in lines:
        match = _RECORD.match(line)
        if match is not None:
            yield _Record(float(match["created"]), match["process"], match["message"])


def stats(phases: tuple[Phase, ...]) -> list[dict[str, Any]]:
    return [asdict(p) for p in phases]


def summary(phases: Iterable[Phase]) -> str:
    """One line: each phase with its seconds and GiB (for `scripts/gpu_check.py`)."""
    parts = []
    for p in phases:
        figures = [f"{p.seconds:.2f} s" if p.seconds is not None else "", f"{p.gib:.2f} GiB" if p.gib else ""]
        shown = ", ".join(f for f in figures if f) or (p.detail or "")
        parts.append(f"{p.phase} {shown}".strip())
    return "; ".join(parts)

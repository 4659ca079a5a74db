"""Where a cold start's seconds go: vLLM's own records of each phase, captured and read.

The GPU records below are vLLM 0.32's format strings (the modules in
`start_phases.PHASE_LOGGERS`) filled in as on a 16 GB card; the CPU ones are what this
machine's vLLM wrote. A real tiny engine's records on CPU are read in test_backend.py.
"""

from __future__ import annotations

import io
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmhost.backends.vllm import start_phases
from llmhost.backends.vllm.start_phases import Attempts, Phase, add_capture, read, summary

T0 = 1_800_000_000.0  # when the load began (wall clock)

GPU_START = [
    (T0 + 7.1, "EngineCore", "Initializing a V1 LLM engine (v0.32.0) with config: model='Qwen/...'"),
    (T0 + 8.0, "EngineCore", "Starting to load model Qwen/Qwen2.5-Coder-7B-Instruct-GPTQ-Int8..."),
    (T0 + 8.2, "EngineCore", "Initializing model took 0.180532 seconds"),
    (T0 + 12.4, "EngineCore", "Loading weights took 4.21 seconds"),
    (T0 + 12.6, "EngineCore", "Model loading took 8.2 GiB memory and 4.612345 seconds"),
    (T0 + 15.0, "EngineCore", "Dynamo bytecode transform time: 2.31 s"),
    (
        T0 + 17.0,
        "EngineCore",
        "Directly load the compiled graph(s) for compile range (1, 2048) from the cache, took 1.902 s",
    ),
    (T0 + 17.1, "EngineCore", "torch.compile took 4.34 s in total"),
    (T0 + 19.0, "EngineCore", "Available KV cache memory: 3.92 GiB"),
    (
        T0 + 19.1,
        "EngineCore",
        "GPU KV cache size: 73,408 tokens, Maximum concurrency for 32,768 tokens per request: 2.24x",
    ),
    (T0 + 28.5, "EngineCore", "Graph capturing finished in 9 secs, took 0.48 GiB"),
    (
        T0 + 28.6,
        "EngineCore",
        "init engine (profile, create kv cache, warmup model) took 16.30 s (compilation: 4.34 s)",
    ),
]


def _write(path: Path, records: list[tuple[float, str, str]]) -> Path:
    path.write_text("".join(f"{t:.3f}|{process}|{message}\n" for t, process, message in records))
    return path


def test_a_gpu_starts_phases_in_vllms_own_figures(tmp_path: Path) -> None:
    phases = {p.phase: p for p in read(_write(tmp_path / "coder.phases.log", GPU_START), T0)}
    assert phases["engine_process"].seconds == pytest.approx(7.1)
    # One GPU: the worker is the engine core's own process; the gap is its device set-up.
    assert phases["worker_setup"].seconds == pytest.approx(0.9)
    assert "CUDA context" in (phases["worker_setup"].detail or "")
    assert phases["weights"].seconds == 4.21
    assert (phases["model_load"].seconds, phases["model_load"].gib) == (4.612345, 8.2)
    assert phases["dynamo"].seconds == 2.31
    assert phases["compile_cache"].detail == "cache hit (range (1, 2048))"
    assert phases["torch_compile"].seconds == 4.34
    assert phases["kv_cache"].gib == 3.92
    assert phases["kv_cache_size"].detail == "73,408 tokens; 2.24x requests of 32,768 tokens"
    assert (phases["cuda_graphs"].seconds, phases["cuda_graphs"].gib) == (9.0, 0.48)
    assert phases["engine_init"].seconds == 16.30
    assert phases["engine_init"].detail == "profile run, KV cache, warm-up; compilation: 4.34 s"
    assert phases["engine_ready"].seconds == pytest.approx(28.6)
    line = summary(phases.values())
    assert "weights 4.21 s" in line and "cuda_graphs 9.00 s, 0.48 GiB" in line


def test_a_compile_cache_miss_and_the_cpu_backends_own_records(tmp_path: Path) -> None:
    records = [
        (T0 + 6.2, "EngineCore", "Initializing a V1 LLM engine (v0.32.0) with config: ..."),
        (T0 + 12.0, "VllmWorker-0", "Starting to load model /models/qwen-tiny..."),
        (T0 + 12.1, "VllmWorker-0", "Loading weights took 0.00 seconds"),
        (T0 + 13.0, "VllmWorker-0", "Warming up model for the compilation..."),
        (T0 + 36.0, "VllmWorker-0", "[backbone] saved AOT compiled function to /root/.cache/vllm/..."),
        (T0 + 36.0, "VllmWorker-0", "[backbone] Initial profiling/warmup run took 0.01 s"),
        (T0 + 36.1, "VllmWorker-0", "Warming up done."),
        (T0 + 36.1, "VllmWorker-0", "Explicitly set (0.06/23.54) GiB for KV cache on node 0."),
        (
            T0 + 36.2,
            "EngineCore",
            "CPU KV cache size: 131,072 tokens, Maximum concurrency for 4,096 tokens per request: 32.00x",
        ),
        (T0 + 36.2, "EngineCore", "init engine (profile, create kv cache, warmup model) took 23.17 s"),
    ]
    phases = {p.phase: p for p in read(_write(tmp_path / "coder.phases.log", records), T0)}
    assert "worker process" in (phases["worker_setup"].detail or "")
    assert phases["worker_setup"].seconds == pytest.approx(5.8)
    assert phases["compile_warmup"].seconds == pytest.approx(23.1)
    assert (phases["compile_cache"].detail or "").startswith("cache miss")
    assert phases["profile_run"].seconds == 0.01
    assert (phases["kv_cache"].gib, phases["kv_cache"].detail) == (0.06, "kv_cache_memory_bytes")


def test_a_retried_start_reports_its_last_try_after_the_refused_one(tmp_path: Path) -> None:
    log = tmp_path / "coder.phases.log"
    starts = iter([T0, T0 + 20.0])
    attempts = Attempts(lambda engine: engine, clock=lambda: next(starts))
    first = [
        (T0 + 6.0, "EngineCore", "Initializing a V1 LLM engine ..."),
        (T0 + 12.0, "W", "Loading weights took 0.50 seconds"),
    ]
    second = [
        (T0 + 26.0, "EngineCore", "Initializing a V1 LLM engine ..."),
        (T0 + 31.0, "W", "Loading weights took 0.40 seconds"),
    ]
    _write(log, first + second)
    attempts({})  # refused (llmhost.backends.vllm.context_fit), then retried
    attempts({})
    phases = attempts.phases(log)
    assert phases[0] == Phase("refused_start", 20.0, None, "a start vLLM refused for its max_model_len")
    assert [p.phase for p in phases[1:]] == ["engine_process", "weights"]
    assert phases[1].seconds == pytest.approx(6.0) and phases[2].seconds == 0.40


def test_no_file_no_phases(tmp_path: Path) -> None:
    assert read(tmp_path / "missing.log", T0) == ()
    assert Attempts(lambda engine: engine).phases(tmp_path / "missing.log") == ()


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """dictConfig reconfigures process-wide loggers: put the ones touched back."""
    names = ["vllm", *start_phases.PHASE_LOGGERS]
    saved = {
        n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
        for n in names
    }
    yield
    for name, (level, handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate


def test_the_capture_keeps_the_console_at_the_users_level(tmp_path: Path, restored_logging: None) -> None:
    console = io.StringIO()
    # vLLM's own set-up (logger.py, DEFAULT_LOGGING_CONFIG) at the level the user chose.
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"vllm": {"format": "%(levelname)s %(message)s"}},
        "handlers": {
            "vllm": {
                "class": "logging.StreamHandler",
                "formatter": "vllm",
                "level": "WARNING",
                "stream": console,
            }
        },
        "loggers": {"vllm": {"handlers": ["vllm"], "level": "WARNING", "propagate": False}},
    }
    phase_log = tmp_path / "coder.phases.log"
    add_capture(config, phase_log, "WARNING")
    logging.config.dictConfig(config)
    core = logging.getLogger("vllm.v1.engine.core")
    core.info("init engine (profile, create kv cache, warmup model) took 0.04 s")
    core.warning("a warning the user sees")
    logging.getLogger("vllm.v1.worker.lora_model_runner").info("not a phase logger: not captured")
    assert console.getvalue() == "WARNING a warning the user sees\n"  # INFO stays off the console
    written = phase_log.read_text().splitlines()
    assert len(written) == 2 and written[0].endswith(
        "|init engine (profile, create kv cache, warmup model) took 0.04 s"
    )
    assert [p.phase for p in read(phase_log, 0.0)] == ["engine_init", "engine_ready"]

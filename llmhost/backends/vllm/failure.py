"""Why a vLLM engine did not start, in one line a user can act on.

When the engine core process fails during start-up, vLLM logs the real error in that
process ("EngineCore failed to start." with its traceback) and the host only receives
"Engine core initialization failed. See root cause above." The root cause (e.g.
"Free memory on device ... is less than desired GPU memory utilization") is what the
503 and `llmhost status` must say.

So each engine gets a logging configuration (vLLM's `LoggingConfig`, which the engine
core applies in its own process) that is vLLM's usual one plus a file handler copying
ERROR records of the `vllm` logger to a file of ours. After a failed start the last
exception line in that file is the root cause. vLLM's own console output is unchanged.
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llmhost.backends.base import describe, one_line
from llmhost.backends.vllm.start_phases import add_capture

# The last line of a Python traceback: "ValueError: Free memory on device ...".
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(?:Error|Exception|Exit)):\s*(.+)$")


def capture_config(log_file: Path, phase_log: Path | None = None) -> Any | None:
    """A vLLM LoggingConfig that also writes ERROR records to `log_file` (None: leave logging be),
    and the records of each start's phases to `phase_log` (llmhost.backends.vllm.start_phases).

    Built from vLLM's own defaults (or the user's VLLM_LOGGING_CONFIG_PATH file), so the
    console output stays what vLLM would print. Imports vLLM: call it where the engine
    is created, in the worker thread.
    """
    import vllm.envs as envs
    from vllm.config.logging import LoggingConfig
    from vllm.logger import DEFAULT_LOGGING_CONFIG

    if not envs.VLLM_CONFIGURE_LOGGING:
        return None  # the user opted out of vLLM's logging set-up: respect that
    user_file = envs.VLLM_LOGGING_CONFIG_PATH
    if user_file:
        try:
            base = json.loads(Path(user_file).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # vLLM reports a broken file itself
    else:
        base = copy.deepcopy(DEFAULT_LOGGING_CONFIG)
        level = envs.VLLM_LOGGING_LEVEL  # vLLM refreshes these for its default config
        base["handlers"]["vllm"]["level"] = level
        base["loggers"]["vllm"]["level"] = level
        for formatter in base["formatters"].values():
            formatter["log_level"] = level
    vllm_logger = base.get("loggers", {}).get("vllm")
    if not isinstance(vllm_logger, dict):
        return None
    base.setdefault("formatters", {})["llmhost_plain"] = {"format": "%(message)s"}
    base.setdefault("handlers", {})["llmhost_failure"] = {
        "class": "logging.FileHandler",
        "filename": str(log_file),
        "level": "ERROR",
        "formatter": "llmhost_plain",
        "delay": True,
    }
    vllm_logger["handlers"] = [*vllm_logger.get("handlers", []), "llmhost_failure"]
    if phase_log is not None:
        add_capture(base, phase_log, envs.VLLM_LOGGING_LEVEL)
    config_file = log_file.with_suffix(".json")
    config_file.write_text(json.dumps(base), encoding="utf-8")
    return LoggingConfig(pylogging_config_file=str(config_file))


def root_cause(error: BaseException, log_file: Path | None) -> str:
    """One line saying why the engine did not start: the engine's own error if it logged
    one, else the exception the host received (pydantic's field errors spelled out)."""
    logged = _last_logged_exception(log_file) if log_file is not None else None
    if logged is not None:
        return logged
    return describe(error)


def _last_logged_exception(log_file: Path) -> str | None:
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = None
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _EXCEPTION_LINE.match(line)
        if match and not line.startswith((" ", "\t")):
            found = f"{match.group(1)}: {match.group(2).strip()}"
            if match.group(1) == "ValidationError":  # the header; the reasons follow it
                details = _validation_details(lines[index + 1 :])
                if details:
                    found = f"ValidationError: {details}"
    return one_line(found) if found else None


def _validation_details(lines: list[str]) -> str:
    """pydantic's indented field messages under its "N validation errors for X" header."""
    messages = []
    for line in lines:
        if not line.startswith(" "):
            break
        text = line.strip()
        if text.startswith("For further information"):
            continue
        if text.startswith("Value error, "):
            messages.append(text.removeprefix("Value error, ").split(" [type=")[0])
    return "; ".join(messages)


def new_log_file(route_name: str) -> Path:
    """An empty file for the errors of the next start of this route's engine."""
    path = _log_dir() / f"{route_name}.log"
    path.unlink(missing_ok=True)
    return path


@functools.cache
def _log_dir() -> Path:
    # One directory per host process, kept while it runs: vLLM's handler in this process
    # may still point at a file in it between loads. Removed at exit.
    path = Path(tempfile.gettempdir()) / f"llmhost-engine-{os.getpid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def remove_log_dir() -> None:
    """Remove this process's engine log directory, if one was made (a fast exit skips atexit)."""
    if _log_dir.cache_info().currsize:
        shutil.rmtree(_log_dir(), ignore_errors=True)

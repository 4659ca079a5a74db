"""Reading vLLM's root cause out of the engine's error log, and describing host-side errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from llmhost.backends.base import describe
from llmhost.backends.vllm.failure import capture_config, root_cause

# What the engine core process writes through our handler when it fails to start
# (format "%(message)s" plus the traceback), as seen from vLLM 0.32 on this machine.
FREE_MEMORY_LOG = (
    "EngineCore failed to start.\n"
    "Traceback (most recent call last):\n"
    '  File "/venv/lib/python3.11/site-packages/vllm/v1/worker/utils.py", line 761, in request_memory\n'
    "    raise ValueError(\n"
    "ValueError: Free memory on device cuda:0 (13.71/15.99 GiB) on startup is less than desired GPU "
    "memory utilization (0.9, 14.39 GiB). Decrease GPU memory utilization or reduce GPU memory used "
    "by other processes.\n"
)

VALIDATION_LOG = (
    "EngineCore failed to start.\n"
    "Traceback (most recent call last):\n"
    '  File "/venv/lib/python3.11/site-packages/vllm/config/model.py", line 400, in __post_init__\n'
    "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n"
    "  Value error, Unknown quantization method: bitsandbytes. Must be one of ['awq', 'gptq']. "
    "[type=value_error, input_value=ArgsKwargs((), {}), input_type=ArgsKwargs]\n"
    "    For further information visit https://errors.pydantic.dev/2.12/v/value_error\n"
)


def test_root_cause_is_the_engines_logged_exception(tmp_path: Path) -> None:
    log = tmp_path / "coder.log"
    log.write_text(FREE_MEMORY_LOG)
    error = RuntimeError("Engine core initialization failed. See root cause above. Failed core proc(s): {}")
    cause = root_cause(error, log)
    assert cause.startswith("ValueError: Free memory on device cuda:0 (13.71/15.99 GiB)")
    assert "root cause above" not in cause


def test_root_cause_spells_out_a_logged_validation_error(tmp_path: Path) -> None:
    log = tmp_path / "coder.log"
    log.write_text(VALIDATION_LOG)
    cause = root_cause(RuntimeError("Engine core initialization failed."), log)
    assert cause == (
        "ValidationError: Unknown quantization method: bitsandbytes. Must be one of ['awq', 'gptq']."
    )


@pytest.mark.parametrize("content", [None, "", "INFO only\nnothing failed here\n"])
def test_root_cause_falls_back_to_the_raised_error(tmp_path: Path, content: str | None) -> None:
    log = tmp_path / "coder.log"
    if content is not None:
        log.write_text(content)
    error = OSError("Repo id must be in the form 'repo_name'\nsecond line")
    assert root_cause(error, log) == "OSError: Repo id must be in the form 'repo_name'"


class _Model(BaseModel):
    quantization: str

    @field_validator("quantization")
    @classmethod
    def _known(cls, value: str) -> str:
        raise ValueError(f"Unknown quantization method: {value}")


def test_describe_gives_pydantic_reasons_not_its_header() -> None:
    with pytest.raises(ValidationError) as caught:
        _Model(quantization="bitsandbytes")
    assert describe(caught.value) == "ValidationError: Unknown quantization method: bitsandbytes"


def test_describe_clips_long_messages() -> None:
    text = describe(ValueError("x" * 5000))
    assert len(text) <= 600 and text.endswith("…")


def test_capture_config_keeps_vllms_handler_and_adds_ours(tmp_path: Path) -> None:
    log = tmp_path / "route.log"
    config = capture_config(log)
    assert config is not None
    written = json.loads(Path(config.pylogging_config_file).read_text())
    assert written["loggers"]["vllm"]["handlers"] == ["vllm", "llmhost_failure"]
    assert written["handlers"]["llmhost_failure"]["filename"] == str(log)
    assert written["handlers"]["llmhost_failure"]["level"] == "ERROR"

"""llmhost.vllm_source as the config uses it: what is read from vLLM's source, the checks
skipped where vLLM is absent, and no import of vLLM itself."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmhost import vllm_source
from llmhost.config import ConfigError, parse_catalog
from llmhost.vllm_source import engine as engine_fields
from llmhost.vllm_source import field_types, parsers, quantization, source
from tests.config.support import engine, pipeline
from tests.vllm_source.support import needs_vllm


@needs_vllm
def test_what_is_read_from_vllm_source() -> None:
    methods = vllm_source.quantization_methods()
    assert methods is not None and {"awq", "gptq", "fp8", "compressed-tensors"} <= set(methods)
    assert "bitsandbytes" not in methods
    assert {"hermes", "llama3_json", "mistral", "pythonic"} <= (vllm_source.tool_parsers() or set())
    assert {"deepseek_r1", "qwen3"} <= (vllm_source.reasoning_parsers() or set())


def test_without_vllm_its_checks_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = (source, field_types, engine_fields, quantization, parsers)
    cached = [f for part in parts for f in vars(part).values() if hasattr(f, "cache_clear")]
    for function in cached:
        function.cache_clear()
    monkeypatch.setattr(source, "_root", lambda: None)
    try:
        text = (
            engine('quantization = "bitsandbytes"\nwarp_speed = 9')
            + "[routes.coder.serving]\ntool_parser = 'x'\n"
        )
        route = parse_catalog(text).routes["coder"]
        assert route.engine["quantization"] == "bitsandbytes" and route.serving.tool_parser == "x"
        with pytest.raises(ConfigError, match="multiple of 16"):  # the host's own rules still apply
            parse_catalog(pipeline("max_edge = 500"))
    finally:
        monkeypatch.undo()
        for function in cached:
            function.cache_clear()


def test_checks_do_not_import_vllm() -> None:
    """Importing vLLM takes seconds; check, reload and start-up read its source instead."""
    text = engine('quantization = "awq"\ndtype = "half"') + "[routes.coder.serving]\ntool_parser = 'hermes'\n"
    script = (
        "import sys\n"
        "from llmhost.config import parse_catalog\n"
        f"parse_catalog({text!r})\n"
        "print(sorted(m for m in sys.modules if m == 'vllm' or m.startswith('vllm.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

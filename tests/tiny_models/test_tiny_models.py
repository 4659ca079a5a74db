"""The package llmhost.tiny_models: importing it is cheap (no torch, transformers, diffusers
or vLLM)."""

from __future__ import annotations

import os


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmhost.tiny_models; "
        "heavy = {'torch', 'transformers', 'tokenizers', 'diffusers', 'vllm'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "[]"

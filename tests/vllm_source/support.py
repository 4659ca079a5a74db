"""What the vllm_source tests share: a mark for the checks that need vLLM's source."""

from __future__ import annotations

import pytest

from llmhost import vllm_source

needs_vllm = pytest.mark.skipif(vllm_source.known() is None, reason="vLLM is not installed")

"""`llmhost unload`'s one line (llmhost/cli/unload.py) from POST /admin/unload's answer; the
command against a real host is in tests/lifecycle/test_unload.py."""

from __future__ import annotations

from llmhost.cli.unload import summary
from llmhost.units import GIB


def test_the_line_names_what_was_unloaded_and_the_memory_that_came_back() -> None:
    body: dict[str, object] = {"unloaded": ["coder", "chat"], "freed_bytes": 3 * GIB // 2}
    assert summary(body) == "unloaded coder, chat; 1.50 GiB of GPU memory came back"


def test_nothing_loaded_and_an_unknown_amount_say_so() -> None:
    body: dict[str, object] = {"unloaded": [], "freed_bytes": None, "freed_reason": "no NVML"}
    assert summary(body) == "nothing was loaded; GPU memory freed: unknown (no NVML)"

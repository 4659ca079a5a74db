"""The bare-engine baseline: vLLM's AsyncLLM created directly, no llmhost host, no HTTP.

The engine is created by llmhost's own loader function (`create_engine`), so the
comparison measures the same load without the host around it.

Run as its own process (`python -m bench.engine_direct SPEC.json`), once per round, so
nothing is shared with another measurement. In one go it measures:

- cold start: importing vLLM, creating `AsyncLLM` for model A, and the first token of
  the same chat request the llmhost side sends (chat template applied, same sampling);
- swap: shutting A down and creating B, until the first token of the same request on B.

Writes its result (seconds of each step) as JSON to the file named by BENCH_RESULT, then
waits: the runner kills this process group, the engine still running included (its
shutdown is not part of any measurement).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from llmhost.backends.vllm.engine import create_engine  # imports no vLLM: that comes after T0

T0 = time.perf_counter()  # before vLLM is imported: the cold start counts the import


async def _first_token(
    engine: Any, messages: list[dict[str, str]], max_tokens: int, rid: str
) -> dict[str, float]:
    from vllm import SamplingParams

    started = time.perf_counter()
    tokenizer = engine.get_tokenizer()
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer.encode(text, add_special_tokens=False)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    first = float("nan")
    tokens = 0
    async for output in engine.generate({"prompt_token_ids": ids}, params, request_id=rid):
        if first != first:
            first = time.perf_counter()
        tokens = len(output.outputs[0].token_ids)
    return {"first_token_at": first, "request_s": time.perf_counter() - started, "tokens": tokens}


def _create(spec: dict[str, Any]) -> Any:
    # llmhost's own loader, so both sides create the engine the same way.
    return create_engine(spec["model"], spec["served_names"], spec["engine"])


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    import vllm  # noqa: F401 - the import is part of a cold start

    imported = time.perf_counter()
    messages = spec["messages"]
    max_tokens = int(spec["max_tokens"])

    engine_a = _create(spec["a"])
    created_a = time.perf_counter()
    first_a = await _first_token(engine_a, messages, max_tokens, "cold")
    result: dict[str, Any] = {
        "import_s": imported - T0,
        "create_s": created_a - imported,
        "cold_start_s": first_a["first_token_at"] - T0,
        "cold_start_no_import_s": first_a["first_token_at"] - imported,
        "cold_tokens": first_a["tokens"],
    }
    if spec.get("b"):
        swap_started = time.perf_counter()
        engine_a.shutdown(timeout=30.0)
        stopped = time.perf_counter()
        engine_b = _create(spec["b"])
        created_b = time.perf_counter()
        first_b = await _first_token(engine_b, messages, max_tokens, "swap")
        result.update(
            swap_s=first_b["first_token_at"] - swap_started,
            swap_shutdown_s=stopped - swap_started,
            swap_create_s=created_b - stopped,
            swap_tokens=first_b["tokens"],
        )
    _write_result(result)
    await asyncio.sleep(3600)  # killed by the runner
    return result


def _write_result(result: dict[str, Any]) -> None:
    final = os.environ["BENCH_RESULT"]
    with open(final + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    os.replace(final + ".tmp", final)  # the runner sees the whole file or none


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec_ = json.load(handle)
    asyncio.run(main(spec_))

"""Which routes vLLM would refuse at their max_model_len on a card, and what the host's
retry would fit them to (llmhost.backends.vllm.context_fit), for `llmhost check --gpu-memory`.

The same accounting as the fit verdict (llmhost.estimate.result.verdict): what the route
needs besides its KV cache, against 90% of the card; the KV cache gets the rest. Where
that rest is less than one sequence of max_model_len, vLLM refuses the configured
context, and the host starts the engine again with about the tokens the rest holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from llmhost.estimate.figures import BLOCK_TOKENS, SLACK, TIGHT_FRACTION
from llmhost.estimate.result import RouteEstimate
from llmhost.units import GIB


def fitted_context(estimate: RouteEstimate, gpu_bytes: int) -> int | None:
    """The max_model_len the route would get on a card of `gpu_bytes`: None when the
    configured one fits (or the estimate cannot tell), 0 when not even the weights do."""
    kv, tokens, need = estimate.kv_cache_bytes, estimate.max_model_len, estimate.need_bytes
    if not kv or not tokens or need is None:
        return None
    room = TIGHT_FRACTION * gpu_bytes - (need - kv)
    if room >= kv:
        return None
    # kv is one sequence in whole blocks plus the pool's null block: per token, about
    # kv / (tokens + a block); the rest holds room / that, less the null block.
    per_token = kv / (tokens + BLOCK_TOKENS)
    fits = math.floor(room / per_token) - BLOCK_TOKENS
    fitted = math.floor(fits * (1 - SLACK) / BLOCK_TOKENS) * BLOCK_TOKENS
    return max(fitted, 0)


def report(estimates: Mapping[str, RouteEstimate], gpu_bytes: int) -> str | None:
    """`llmhost check`'s lines on fitted contexts; None when every known context fits."""
    lines = []
    for name, estimate in estimates.items():
        fitted = fitted_context(estimate, gpu_bytes)
        if fitted is None:
            continue
        configured = estimate.max_model_len
        if fitted == 0:
            lines.append(f"  {name}: max_model_len {configured}: no KV cache fits beside the weights")
        else:
            lines.append(f"  {name}: max_model_len {configured} -> about {fitted:,} tokens")
    if not lines:
        return None
    head = (
        f"Contexts fitted down on {gpu_bytes / GIB:.2f} GiB: vLLM refuses a max_model_len whose KV "
        "cache does not fit beside the weights, and the host then starts the engine once more "
        "with the longest that fits (docs/gpu.md#engines-that-fit-themselves):"
    )
    return "\n".join([head, *lines])

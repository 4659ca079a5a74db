"""One call into a route's vLLM serving objects under a lease, for the endpoints that have
no loading feedback (Responses, Anthropic Messages): the lease and the call are waited for
together, and given up when the client leaves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from fastapi import Request

from llmhost.api.disconnect import until_disconnected
from llmhost.api.streaming import LeaseHold
from llmhost.backends.base import LlmBackend
from llmhost.config import RouteConfig
from llmhost.errors import HostError, vllm_client_error
from llmhost.lifecycle.slot import Lease
from llmhost.state import HostState

T = TypeVar("T")

# Backend classes known to serve completions: a protocol check walks the protocol's
# members each time, too slow to repeat on every request.
_LLM_BACKEND_TYPES: dict[type, bool] = {}


def llm_backend(lease: Lease) -> LlmBackend:
    backend = lease.backend
    kind = type(backend)
    serves = _LLM_BACKEND_TYPES.get(kind)
    if serves is None:
        serves = _LLM_BACKEND_TYPES[kind] = isinstance(backend, LlmBackend)
    if not serves:
        raise HostError(f"{lease.route.primary_id} does not serve completions.")
    return cast(LlmBackend, backend)


class Leased:
    """What a call under a lease gave: vLLM's result, and the hold to close (by the
    handler once it answered, or by the stream it answers with)."""

    def __init__(self, hold: LeaseHold, lease: Lease, result: Any) -> None:
        self.hold = hold
        self.lease = lease
        self.result = result


async def call_leased(
    request: Request,
    state: HostState,
    route: RouteConfig,
    call: Callable[[LlmBackend], Awaitable[Any]],
) -> Leased | None:
    """`call` on the route's backend once a lease on it is granted (a cold model loads
    first); None if the client went away meanwhile (the work is cancelled, which aborts
    it inside the engine, and the hold is closed). A refusal of the lease (overloaded,
    load failed, ...) is raised as the HostError it is."""
    hold = LeaseHold(state.manager, route.name)
    try:
        taken = await until_disconnected(request, _lease_and_call(hold, call))
    except BaseException:
        await hold.aclose()
        raise
    if taken is None:
        await hold.aclose()
        return None
    lease, result = taken
    return Leased(hold, lease, result)


async def _lease_and_call(hold: LeaseHold, call: Callable[[LlmBackend], Awaitable[T]]) -> tuple[Lease, T]:
    lease = await hold.taking
    try:
        return lease, await call(llm_backend(lease))
    except Exception as exc:
        raise vllm_client_error(exc) from exc

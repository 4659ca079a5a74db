"""One call into a route's vLLM serving objects under a lease, for the endpoints that have
no loading feedback (Responses, Anthropic Messages): the lease and the call are waited for
together, and given up when the client leaves. What vLLM raises becomes the host's error
here (a dead engine a 503 that names the failure, not an unexpected 500), and so does the
end of a stream that broke off (`broken_stream`, `engine_gone`). The chat endpoints use its
backend check (`llm_backend`) and error mapping (`serving_error`) too."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from fastapi import Request

from llmhost.api.disconnect import until_disconnected
from llmhost.api.streaming import LeaseHold
from llmhost.backends.base import LlmBackend
from llmhost.config import RouteConfig
from llmhost.errors import HostError, engine_failed, vllm_error
from llmhost.lifecycle.slot import Lease
from llmhost.server.host_state import HostState

log = logging.getLogger("llmhost")

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
    load failed, ...) is raised as the HostError it is, and so is what vLLM raised
    (`serving_error`)."""
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
        raise serving_error(lease, exc) from exc


def serving_error(lease: Lease, exc: Exception) -> Exception:
    """What vLLM raised under `lease`, as the error the client gets (llmhost.errors.vllm_error:
    a request error the 400 `vllm serve` gives, a dead engine a 503 naming the failure)."""
    return vllm_error(exc, lease.route.primary_id, lease.backend.failure())


class StreamInterrupted(HostError):
    """A stream that ended before its answer did, for a reason that is not vLLM's to name."""

    code = "stream_interrupted"


def engine_gone(lease: Lease) -> HostError | None:
    """Why an error event of vLLM's in a stream under `lease` is the host's to name: its engine
    died (vLLM's own event only says "see stack trace"), or the model was unloaded under it
    (its engine, and its failure with it, may be gone: the revoke reason says what happened).
    None while the engine lives: the event is vLLM's account of a request error."""
    failure = lease.backend.failure()
    if failure is not None:
        return engine_failed(lease.route.primary_id, failure)
    if lease.revoked is not None:
        return StreamInterrupted(lease.revoked)
    return None


def broken_stream(lease: Lease, exc: Exception) -> HostError:
    """The error that ends a stream under `lease` whose content raised `exc`: a dead engine or
    an unload under it named as such (`engine_gone`: what vLLM raises then does not say which),
    else vLLM's errors as the host's, anything else as an interrupted stream (logged: not the
    lifecycle's doing)."""
    gone = engine_gone(lease)
    if gone is not None:
        return gone
    error = serving_error(lease, exc)
    if isinstance(error, HostError):
        return error
    message = f"The stream from {lease.route.primary_id} broke off: {type(exc).__name__}: {exc}"
    log.warning("%s", message)
    return StreamInterrupted(message)

"""vLLM's request models, validated exactly as `vllm serve` validates them, before any model
is touched: where each endpoint's module comes from (the start-up preload's for chat,
completions, embeddings and rerank; imported by the first request for Responses and
Anthropic Messages), and the 400 a body that does not validate gets."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from llmhost.config import RouteConfig
from llmhost.errors import invalid_body, vllm_client_error
from llmhost.server.host_state import HostState

# The start-up preload imports vLLM in a background thread; an import of another vLLM
# module in a second thread meanwhile could deadlock on import locks, so it waits.
PRELOAD_WAIT_SECONDS = 300.0

_imported: set[str] = set()  # whole: a module in sys.modules may still be importing


async def preloaded(state: HostState, route: RouteConfig, module_name: str) -> ModuleType:
    """A module the start-up preload imports (llmhost.server.preload); a request that comes
    before that is done waits for it, and counts as waiting."""
    module = sys.modules.get(module_name)
    if module is None or not state.preload.ready(module_name):
        with state.manager.preparing(route.name):
            module = await state.preload.module(module_name)
    return module


async def request_class(state: HostState, route: RouteConfig, module_name: str, class_name: str) -> Any:
    """vLLM's pydantic class; the first request imports it (off the event loop, counted as
    waiting for its model in /stats), the others find it imported."""
    if module_name in _imported:
        return getattr(sys.modules[module_name], class_name)
    with state.manager.preparing(route.name):
        # Waiting for the preload holds no worker thread: many requests can arrive during it.
        try:
            await asyncio.wait_for(state.preload.settled(), PRELOAD_WAIT_SECONDS)
        except asyncio.TimeoutError:
            pass  # import it here anyway; a failed preload says why in the log
        module = await asyncio.to_thread(importlib.import_module, module_name)
    _imported.add(module_name)
    return getattr(module, class_name)


async def parse(
    state: HostState, route: RouteConfig, module_name: str, class_name: str, body: dict[str, Any]
) -> Any:
    """`body` as vLLM's request model, or the 400 that says what is wrong with it."""
    body.setdefault("model", route.primary_id)
    model = await request_class(state, route, module_name, class_name)
    return validate(model.model_validate, body)


def validate(
    validator: Callable[[dict[str, Any]], Any],
    body: dict[str, Any],
    explain: Callable[[ValidationError], ValidationError] | None = None,
) -> Any:
    """`body` through vLLM's validator, or the 400 that says what is wrong with it: pydantic's
    errors (through `explain` when given), or what vLLM's own checks raise."""
    try:
        return validator(body)
    except ValidationError as exc:
        raise invalid_body(exc if explain is None else explain(exc)) from None
    except Exception as exc:
        raise vllm_client_error(exc) from None

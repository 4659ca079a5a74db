"""vLLM's request classes for the endpoints beyond chat and completions (Responses,
Anthropic Messages), validated exactly as `vllm serve` validates them, before any model
is touched."""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

from pydantic import ValidationError

from llmhost.config import RouteConfig
from llmhost.errors import invalid_body, vllm_client_error
from llmhost.preload import Preloader
from llmhost.state import HostState

# The start-up preload imports vLLM in a background thread; an import of another vLLM
# module in a second thread meanwhile could deadlock on import locks, so it waits.
PRELOAD_WAIT_SECONDS = 300.0

_imported: set[str] = set()  # whole: a module in sys.modules may still be importing


def _import_after_preload(preload: Preloader, module_name: str) -> Any:
    preload.wait_all(timeout=PRELOAD_WAIT_SECONDS)
    return importlib.import_module(module_name)


async def request_class(state: HostState, route: RouteConfig, module_name: str, class_name: str) -> Any:
    """vLLM's pydantic class; the first request imports it (off the event loop, counted as
    waiting for its model in /stats), the others find it imported."""
    if module_name in _imported:
        return getattr(sys.modules[module_name], class_name)
    with state.manager.preparing(route.name):
        module = await asyncio.to_thread(_import_after_preload, state.preload, module_name)
    _imported.add(module_name)
    return getattr(module, class_name)


async def parse(
    state: HostState, route: RouteConfig, module_name: str, class_name: str, body: dict[str, Any]
) -> Any:
    """`body` as vLLM's request model, or the 400 that says what is wrong with it."""
    body.setdefault("model", route.primary_id)
    model = await request_class(state, route, module_name, class_name)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_body(exc) from None
    except Exception as exc:
        raise vllm_client_error(exc) from None

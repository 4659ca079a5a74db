"""vLLM's OpenAI serving objects for a started engine, wired as `vllm serve` wires them.

Chat templating, tool-call and reasoning parsing and SSE framing are vLLM's
(`OpenAIServingChat`, `OpenAIServingCompletion`, `OpenAIServingResponses`,
`AnthropicServingMessages`); the route's [serving] table chooses their options.
vLLM is imported inside `build_serving`, never at module import.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from llmhost.config import RouteConfig


@dataclass(frozen=True)
class Serving:
    """The serving objects of one engine, one per API family."""

    models: Any
    chat: Any
    completion: Any
    responses: Any
    messages: Any


async def build_serving(engine: Any, route: RouteConfig) -> Serving:
    """The serving objects for `engine`, a started AsyncLLM serving `route`."""
    from vllm.entrypoints.anthropic.serving import AnthropicServingMessages
    from vllm.entrypoints.openai.chat_completion.serving import OpenAIServingChat
    from vllm.entrypoints.openai.completion.serving import OpenAIServingCompletion
    from vllm.entrypoints.openai.models.protocol import BaseModelPath
    from vllm.entrypoints.openai.models.serving import OpenAIServingModels
    from vllm.entrypoints.openai.responses.serving import OpenAIServingResponses
    from vllm.renderers.chat_utils import load_chat_template
    from vllm.renderers.online_renderer import OnlineRenderer

    serving = route.serving
    template = load_chat_template(serving.chat_template)
    models = OpenAIServingModels(
        engine_client=engine,
        base_model_paths=[BaseModelPath(name=name, model_path=route.model) for name in route.model_ids],
    )
    renderer = OnlineRenderer(
        model_config=engine.model_config,
        renderer=engine.renderer,
        request_logger=None,
        chat_template=template,
        chat_template_content_format=serving.chat_template_content_format,
        trust_request_chat_template=False,
        enable_auto_tools=serving.auto_tools,
        tool_parser=serving.tool_parser,
        reasoning_parser=serving.reasoning_parser or "",
    )
    await asyncio.to_thread(renderer.warmup)
    common: dict[str, Any] = {
        "online_renderer": renderer,
        "request_logger": None,
        "enable_prompt_tokens_details": serving.enable_prompt_tokens_details,
    }
    templating: dict[str, Any] = {
        "chat_template": template,
        "chat_template_content_format": serving.chat_template_content_format,
        "enable_auto_tools": serving.auto_tools,
        "tool_parser": serving.tool_parser,
        "reasoning_parser": serving.reasoning_parser or "",
    }
    return Serving(
        models=models,
        chat=OpenAIServingChat(engine, models, serving.response_role, **templating, **common),
        completion=OpenAIServingCompletion(engine, models, **common),
        # Stored responses live in this object (vLLM's in-memory store, only with
        # VLLM_ENABLE_RESPONSES_API_STORE=1): they go with the engine at its unload.
        # No tool server: the built-in tools (web search, code interpreter) are not served.
        responses=OpenAIServingResponses(engine, models, **templating, **common),
        messages=AnthropicServingMessages(engine, models, serving.response_role, **templating, **common),
    )

"""An `embedding` or `rerank` route: vLLM's AsyncLLM with its pooling runner, served through
vLLM's own pooling serving objects, as `vllm serve` wires them
(vllm/entrypoints/pooling/factories.py, `init_pooling_state`): `ServingEmbedding` for
/v1/embeddings, `ServingScores` for /v1/rerank.

The engine's life (start, stop, its processes, a start abandoned half-way, its death) is
the LLM backend's (llmhost.backends.vllm.backend); only the engine's runner and the serving objects
differ. Which pooling task vLLM settles on is vLLM's to say once the engine runs; a route
whose model does not serve its kind's endpoint fails its load with that reason.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from llmhost.backends.base import Backend, LoadFailed
from llmhost.backends.vllm.backend import VllmBackend
from llmhost.config import HostConfig, RouteConfig


class PoolingServing(Protocol):
    """vLLM's ServingEmbedding or ServingScores, as the API calls them: a validated request
    in, a finished HTTP response out (vLLM's JSON); request errors are raised."""

    async def __call__(self, request: Any, raw_request: Any = None) -> Any: ...


@runtime_checkable
class PoolingBackend(Backend, Protocol):
    """A loaded pooling model: `embedding` on embedding routes, `scores` on rerank routes
    (the other is None)."""

    embedding: PoolingServing | None
    scores: PoolingServing | None


class VllmPoolingBackend(VllmBackend):
    def __init__(self, route: RouteConfig, host: HostConfig) -> None:
        # The route as the engine sees it: with vLLM's pooling runner (the kind decides it,
        # as sizing puts the GPU budget into [engine]).
        super().__init__(route.model_copy(update={"engine": {**route.engine, "runner": "pooling"}}), host)
        self.embedding: PoolingServing | None = None
        self.scores: PoolingServing | None = None

    async def _build_serving(self) -> None:
        from vllm.entrypoints.openai.models.protocol import BaseModelPath
        from vllm.entrypoints.openai.models.serving import OpenAIServingModels
        from vllm.entrypoints.pooling.utils import enable_scoring_api
        from vllm.renderers.chat_utils import ChatTemplateConfig, load_chat_template

        engine = self.engine
        route = self.route
        tasks = tuple(await engine.get_supported_tasks())
        model_config = engine.model_config
        task = model_config.get_pooling_task(tasks)
        labels = getattr(model_config.hf_config, "num_labels", None)
        problem = serving_problem(route, task, enable_scoring_api(tasks, model_config), labels)
        if problem is not None:
            raise LoadFailed(problem)
        self.models = OpenAIServingModels(
            engine_client=engine,
            base_model_paths=[BaseModelPath(name=name, model_path=route.model) for name in route.model_ids],
        )
        # Chat-shaped embedding inputs (`messages`) and score templates use the model's template.
        template = ChatTemplateConfig(
            chat_template=load_chat_template(route.serving.chat_template),
            chat_template_content_format=route.serving.chat_template_content_format,
        )
        if route.kind == "embedding":
            from vllm.entrypoints.pooling.embed.serving import ServingEmbedding

            self.embedding = ServingEmbedding(
                engine, self.models, request_logger=None, chat_template_config=template
            )
        else:
            from vllm.entrypoints.pooling.scoring.serving import ServingScores

            self.scores = ServingScores(
                engine, self.models, supported_tasks=tasks, request_logger=None, chat_template_config=template
            )

    async def stop(self) -> None:
        self.embedding = self.scores = None
        await super().stop()


def serving_problem(route: RouteConfig, task: str | None, scoring: bool, labels: Any) -> str | None:
    """Why the started engine cannot serve the route's endpoint, in vLLM's terms, or None.

    `task` is the pooling task vLLM settled on (`ModelConfig.get_pooling_task`), `scoring`
    whether it serves the score/rerank API (`enable_scoring_api`), `labels` the model's
    num_labels (a cross-encoder has one)."""
    if route.kind == "embedding" and task != "embed":
        hint = '; it can rerank: serve it as kind = "rerank"' if scoring else ""
        return f"vLLM pools {route.model} as {task!r}, not 'embed', so it serves no embeddings{hint}"
    if route.kind == "rerank" and not scoring:
        why = f" (a cross-encoder has one label; this one has {labels})" if task == "classify" else ""
        return f"vLLM serves no rerank (score) API for {route.model}: its pooling task is {task!r}{why}"
    return None

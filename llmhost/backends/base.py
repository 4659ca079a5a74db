"""The interfaces the host drives: `Backend` for the lifecycle manager, `LlmBackend` and
`ImageBackend` for the API. One implementation per route kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from llmhost.config import HostConfig, RouteConfig

# How long an abandoned start may take to return once its backend was stopped (vLLM's
# start returns once its processes are killed; a start still in the host process, e.g.
# reading a large config, cannot be interrupted sooner). One bound for the backends that
# wait for their start and for the lifecycle that waits for the backend.
ABANDON_TIMEOUT_SECONDS = 120.0
# The longest a backend's `stop` may take, its processes' exit included: the lifecycle
# counts it in a request's default wait (llmhost.lifecycle.bounds). vLLM's is the longest
# (llmhost.backends.vllm.backend.STOP_SECONDS: 30 s shutdown, 10 s exit, 5 s after a kill).
STOP_BOUND_SECONDS = 45.0


class LoadFailed(RuntimeError):
    """A backend's `start` failed; the message says why in one line, meant for users."""


# A failure message is shown in a 503, in `llmhost status` and in the log: one line, bounded.
_MAX_CHARS = 600


def one_line(text: str) -> str:
    """`text` on one line, clipped to a length a status line can show."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_CHARS else text[: _MAX_CHARS - 1] + "…"


def describe(error: BaseException) -> str:
    """`Type: first line`, with the field messages of a pydantic ValidationError (vLLM's
    configuration errors, e.g. an unknown quantization method) instead of its header."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        try:
            messages = [str(e.get("msg", "")).removeprefix("Value error, ") for e in errors()]
        except Exception:
            messages = []
        messages = [m for m in messages if m]
        if messages:
            return one_line(f"{type(error).__name__}: {'; '.join(messages)}")
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    return one_line(f"{type(error).__name__}: {first}" if first else type(error).__name__)


@dataclass(frozen=True)
class ImageJob:
    """One validated generation request. `width`/`height` None: the pipeline's own size."""

    prompt: str
    seed: int
    steps: int
    guidance_scale: float
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    count: int = 1


@dataclass(frozen=True)
class ImageResult:
    png: list[bytes]
    width: int
    height: int
    seed: int
    elapsed: float  # seconds spent generating and encoding, not waiting


@runtime_checkable
class Backend(Protocol):
    """One loaded model. Created stopped; `start` loads it, `stop` frees everything it holds.

    `start` and `stop` may take minutes and must not block the event loop (run the slow
    parts in a thread). `stop` is called exactly once after a `start`, even a failed or
    cancelled one, and must be safe then.
    """

    route: RouteConfig

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def failure(self) -> str | None:
        """Why the loaded model can no longer serve (its engine died), or None."""
        ...


@dataclass(frozen=True)
class Probe:
    """A fixed greedy completion: its token ids are compared, its text is for the log."""

    token_ids: tuple[int, ...]
    text: str


@runtime_checkable
class Sleeper(Protocol):
    """A backend that can give its GPU memory back and keep its engine (vLLM's sleep
    mode; docs/standby.md). The manager calls these only between requests."""

    def standby_problem(self) -> str | None:
        """Why this started engine cannot sleep (e.g. the platform has no sleep mode), or None."""
        ...

    def standby_ram_bytes(self, level: int) -> int | None:
        """The host RAM a sleep at `level` would hold (level 1: the weights), None if unknown."""
        ...

    async def sleep(self, level: int) -> int | None:
        """Give the GPU memory back (level 1: weights to host RAM; level 2: weights
        dropped). Returns the host RAM the sleeping engine now holds, when measurable."""
        ...

    async def wake(self, level: int) -> None:
        """Take the GPU memory again; after level 2 the weights are reloaded from disk."""
        ...

    async def probe(self) -> Probe:
        """The token ids of a fixed greedy completion: equal before a sleep and after a
        good wake (llmhost.lifecycle.operations compares them)."""
        ...


@runtime_checkable
class StartReport(Protocol):
    """What an engine's own start said about it (vLLM: the context it got and where the
    start's seconds went), kept per model beyond the engine's life for `/stats`. A backend
    that keeps one has it as its `engine_start` attribute once started."""

    def stats(self) -> dict[str, Any]:
        """The model's `/stats` keys for this start (the keys of `NO_START_STATS`)."""
        ...


# A model's `/stats` keys for its last cold start when its backend kept no report.
NO_START_STATS: dict[str, Any] = {
    "cold_start_phases": None,
    "max_model_len": None,
    "max_model_len_reason": None,
    "max_model_len_fitted_from": None,
}


def start_report_of(backend: object) -> StartReport | None:
    """The start report of `backend`, if its kind keeps one."""
    report = getattr(backend, "engine_start", None)
    return report if isinstance(report, StartReport) else None


def start_stats_of(report: StartReport | None) -> dict[str, Any]:
    """A model's `/stats` keys for its last cold start (None where unknown)."""
    return report.stats() if report is not None else dict(NO_START_STATS)


class ServingAnswer(Protocol):
    """A complete answer, or vLLM's ErrorResponse (already the OpenAI error envelope)."""

    def model_dump(self, **kwargs: Any) -> Any: ...


# What a serving call returns: one answer, or the stream's SSE events.
ServingResult = ServingAnswer | AsyncIterator[str]


class ChatServing(Protocol):
    """vLLM's OpenAIServingChat, as the API calls it."""

    async def create_chat_completion(self, request: Any, raw_request: Any) -> ServingResult: ...


class CompletionServing(Protocol):
    """vLLM's OpenAIServingCompletion, as the API calls it."""

    async def create_completion(self, request: Any, raw_request: Any) -> ServingResult: ...


class ResponsesServing(Protocol):
    """vLLM's OpenAIServingResponses, as the API calls it: a stream is of vLLM's event
    objects (each with its `type`), not yet SSE."""

    async def create_responses(
        self, request: Any, raw_request: Any
    ) -> ServingAnswer | AsyncIterator[Any]: ...


class MessagesServing(Protocol):
    """vLLM's AnthropicServingMessages, as the API calls it (Anthropic's Messages API)."""

    async def create_messages(self, request: Any, raw_request: Any) -> ServingResult: ...

    async def count_tokens(self, request: Any, raw_request: Any) -> ServingAnswer: ...


@runtime_checkable
class LlmBackend(Backend, Protocol):
    """A loaded language model: the API hands it requests already validated with vLLM's
    own protocol models (`request`) and the HTTP request they came in (`raw_request`)."""

    chat: ChatServing
    completion: CompletionServing
    responses: ResponsesServing
    messages: MessagesServing


@runtime_checkable
class ImageBackend(Protocol):
    """A loaded image pipeline: one job in, PNGs out. (Methods only, so a backend class
    can be asked too: `issubclass(cls, ImageBackend)`.)"""

    async def generate(self, job: ImageJob) -> ImageResult: ...


BackendFactory = Callable[[RouteConfig, HostConfig], Backend]

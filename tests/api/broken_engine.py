"""What the Responses and Messages serving tests share: a route whose fake engine breaks
under a request (the serving object that breaks is each test's own), and the last event of
an SSE body."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from llmhost.config import HostConfig, RouteConfig
from llmhost.lifecycle.manager import ModelManager
from tests import catalogs
from tests.fakes import FakeBackend, Recorder

CATALOG = catalogs.catalog({"coder": catalogs.CODER})
DIED = "the vLLM engine core process died"
UNLOADED = "coder was unloaded (its engine stopped working) before this request finished"
# The serving objects an LlmBackend has (llmhost.backends.base).
SERVING = ("chat", "completion", "responses", "messages")


def engine_dead() -> Exception:
    from vllm.v1.engine.exceptions import EngineDeadError  # imported once the request parsed

    error: Exception = EngineDeadError()
    return error


@dataclass
class BrokenRecorder(Recorder):
    """Fake backends whose `endpoint` serving object is `broken_serving`'s; `then` says how
    its stream breaks ("dies", "unloaded", or what the serving object makes of it)."""

    endpoint: ClassVar[str]
    then: str = "dies"
    manager: ModelManager | None = None

    def broken_serving(self, backend: FakeBackend) -> Any:
        raise NotImplementedError

    def unload_under_the_stream(self) -> None:
        """What the lifecycle does to the leases of a model it unloads under them."""
        assert self.manager is not None
        for lease in self.manager.slots["coder"].active:
            lease.revoked = UNLOADED

    def factory(self, route: RouteConfig, host: HostConfig) -> FakeBackend:
        backend = FakeBackend(route, self)
        for name in SERVING:  # only `endpoint` is used
            setattr(backend, name, None)
        setattr(backend, self.endpoint, self.broken_serving(backend))
        return backend


def last_event(text: str) -> tuple[str, dict[str, Any]]:
    """The last event of an SSE body: its name, and its data."""
    lines = text.strip().split("\n\n")[-1].splitlines()
    assert lines[0].startswith("event: ") and lines[1].startswith("data: ")
    data: dict[str, Any] = json.loads(lines[1][6:])
    return lines[0][7:], data

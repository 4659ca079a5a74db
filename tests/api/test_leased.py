"""A call into a route's vLLM serving objects under a lease (llmhost.api.leased), the errors
it ends with: a backend that serves no completions, a stream whose engine died or whose
model was unloaded under it, and one that broke off for another reason. The same paths over
HTTP are in tests/api/chat/test_engine_failure.py and tests/api/test_streaming.py."""

from __future__ import annotations

import logging

import pytest

from llmhost.api.leased import StreamInterrupted, broken_stream, engine_gone, llm_backend
from llmhost.errors import EngineFailed, HostError
from llmhost.lifecycle.slot import Lease, Slot
from tests.fakes import FakeBackend, Recorder, catalog


def lease() -> tuple[Lease, FakeBackend]:
    route = catalog("exclusive", ("a",)).routes["a"]
    backend = FakeBackend(route, Recorder())
    return Lease(Slot(route), backend), backend


class ImageOnly(FakeBackend):
    """A backend class with no chat or completion serving objects (as a diffusion one).
    Its own class: llm_backend remembers its answer per backend class, and other tests
    give FakeBackend instances serving objects."""


def test_a_backend_without_completions_is_refused_by_name() -> None:
    route = catalog("exclusive", ("a",)).routes["a"]
    held = Lease(Slot(route), ImageOnly(route, Recorder()))
    with pytest.raises(HostError, match=r"^a-model does not serve completions\.$"):
        llm_backend(held)


def test_a_stream_that_broke_off_is_named_for_what_happened(caplog: pytest.LogCaptureFixture) -> None:
    held, backend = lease()
    assert engine_gone(held) is None  # the engine lives: vLLM's own error event stands
    caplog.set_level(logging.WARNING, logger="llmhost")
    other = broken_stream(held, ValueError("socket closed"))
    assert isinstance(other, StreamInterrupted)
    assert str(other) == "The stream from a-model broke off: ValueError: socket closed"
    assert "broke off" in caplog.text  # not the lifecycle's doing: logged
    held.revoked = "a-model was unloaded: requested"
    unloaded = broken_stream(held, ValueError("cancelled"))
    assert isinstance(unloaded, StreamInterrupted) and str(unloaded) == "a-model was unloaded: requested"
    backend.dead = "the engine core exited with signal 9"  # a dead engine is named first
    dead = broken_stream(held, ValueError("cancelled"))
    assert isinstance(dead, EngineFailed) and "failed during this request: the engine core exited" in str(
        dead
    )
    assert dead.retry_after == 5

"""LeaseHold and LeasedStream: a lease is released by whoever holds it, exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import ClientDisconnect
from starlette.types import Message

from llmhost.api.streaming import LeasedStream, LeaseHold
from llmhost.gpu.monitor import NullMonitor
from llmhost.lifecycle.manager import ModelManager
from llmhost.lifecycle.state import ModelState
from tests.apphelp import until_state
from tests.fakes import Recorder, catalog, no_sleep_mode


def _in_flight(manager: ModelManager) -> int:
    return int(manager.snapshot()[0]["in_flight"])


async def _manager() -> ModelManager:
    manager = ModelManager(
        catalog(routes=("a",)), Recorder().factory, NullMonitor("test"), standby_query=no_sleep_mode
    )
    manager.start()
    return manager


async def test_hold_releases_its_lease_once() -> None:
    manager = await _manager()
    async with LeaseHold(manager, "a") as hold:
        lease = await hold.taking
        assert _in_flight(manager) == 1
    assert lease.released and _in_flight(manager) == 0
    await hold.aclose()  # a second close changes nothing
    assert _in_flight(manager) == 0
    await manager.close()


async def test_closing_a_waiting_hold_stops_waiting() -> None:
    manager = await _manager()
    hold = LeaseHold(manager, "a")  # the model is cold: this waits for its load
    await asyncio.wait_for(until_state(manager, "a", ModelState.LOADING), 30)
    assert not hold.taking.done()
    await hold.aclose()
    assert hold.taking.cancelled()
    await asyncio.wait_for(until_state(manager, "a", ModelState.READY), 30)  # the load finished
    assert _in_flight(manager) == 0  # and no lease is left behind
    await manager.close()


async def test_stream_releases_the_lease_after_closing_its_content() -> None:
    manager = await _manager()
    hold = LeaseHold(manager, "a")
    await hold.taking
    order: list[str] = []

    async def events() -> Any:
        try:
            yield "data: 1\n\n"
            yield "data: 2\n\n"
        finally:
            order.append(f"content closed, in flight {_in_flight(manager)}")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}}
    await LeasedStream(events(), hold)(scope, receive, send)
    assert order == ["content closed, in flight 1"]
    assert _in_flight(manager) == 0
    assert b"".join(m.get("body", b"") for m in sent) == b"data: 1\n\ndata: 2\n\n"
    await manager.close()


SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}}


async def _never_disconnects() -> Message:
    await asyncio.sleep(3600)
    return {"type": "http.disconnect"}


async def _breaking() -> Any:
    yield "data: 1\n\n"
    raise RuntimeError("engine gone")


async def test_a_broken_stream_ends_with_the_error_event_of_on_error() -> None:
    manager = await _manager()
    hold = LeaseHold(manager, "a")
    await hold.taking
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    def on_error(exc: Exception) -> str:
        return f"data: {{'error': '{exc}'}}\n\n"

    await LeasedStream(_breaking(), hold, on_error=on_error)(SCOPE, _never_disconnects, send)
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n", b"data: {'error': 'engine gone'}\n\n", b""]
    assert sent[-1]["more_body"] is False
    assert _in_flight(manager) == 0
    await manager.close()


async def test_without_on_error_a_broken_stream_raises_and_still_releases() -> None:
    manager = await _manager()
    hold = LeaseHold(manager, "a")
    await hold.taking

    async def send(message: Message) -> None:
        pass

    with pytest.raises(RuntimeError, match="engine gone"):
        await LeasedStream(_breaking(), hold)(SCOPE, _never_disconnects, send)
    assert _in_flight(manager) == 0
    await manager.close()


async def test_a_client_gone_while_sending_is_not_made_an_error_event() -> None:
    manager = await _manager()
    hold = LeaseHold(manager, "a")
    await hold.taking
    closed: list[bool] = []

    async def events() -> Any:
        try:
            while True:
                yield "data: x\n\n"
        finally:
            closed.append(True)

    def on_error(exc: Exception) -> str:
        raise AssertionError(f"on_error called for the client's {exc!r}")

    async def send(message: Message) -> None:
        if message.get("body"):
            raise OSError("connection reset")  # what the server raises once the client is gone

    with pytest.raises(ClientDisconnect):
        await LeasedStream(events(), hold, on_error=on_error)(SCOPE, _never_disconnects, send)
    assert closed == [True]  # the engine's request was closed ...
    assert _in_flight(manager) == 0  # ... and the lease released
    await manager.close()

"""A dead engine gets no new lease: the scheduler evicts it at once, without waiting for
its leases to drain (they are revoked with the failure), and the next request cold-loads.
The real engine's side (its EngineCore killed under load) is in test_engines.py."""

from __future__ import annotations

import asyncio

from llmhost.lifecycle.state import ModelState
from tests.fakes import FakeBackend, Recorder
from tests.lifecycle.support import settled, start_manager, use, wait_until, within

DIED = "the vLLM engine core process died"


def _kill(manager: object, route: str) -> FakeBackend:
    backend = manager.slots[route].backend  # type: ignore[attr-defined]
    assert isinstance(backend, FakeBackend)
    backend.dead = DIED
    return backend


async def test_a_request_never_gets_a_lease_on_a_dead_engine() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec)
    await within(use(manager, "a"))
    dead = _kill(manager, "a")
    lease = await within(manager.acquire("a"))  # not the fast path: the engine is dead
    assert lease.backend is not dead and lease.backend.failure() is None
    assert rec.events == ["load a", "stop a", "load a"]
    stats = {s["route"]: s for s in manager.snapshot()}["a"]
    assert stats["evictions"] == 1 and stats["loads"] == 2
    manager.release(lease)
    await manager.close()


async def test_queued_requests_are_not_granted_to_a_dead_engine() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec, routes=("a",), max_in_flight=1)
    first = await within(manager.acquire("a"))
    second = asyncio.create_task(manager.acquire("a"))  # at its limit: queued
    await wait_until(manager, lambda: bool(manager.slots["a"].waiting))
    await settled(manager)
    dead = _kill(manager, "a")
    manager.release(first)  # a place is free: the pass looks at the engine before granting
    lease = await within(second)
    assert lease.backend is not dead
    assert rec.events == ["load a", "stop a", "load a"]
    manager.release(lease)
    await manager.close()


async def test_a_dead_engine_is_evicted_at_once_and_its_leases_end_with_the_failure() -> None:
    rec = Recorder()
    manager, _ = start_manager(rec, drain_timeout_seconds=60)
    in_flight = await within(manager.acquire("a"))
    _kill(manager, "a")
    # No drain: the clock never reaches the 60 s bound, and the request still holding the
    # dead engine does not hold up its replacement.
    fresh = await within(manager.acquire("a"))
    assert in_flight.revoked is not None and DIED in in_flight.revoked
    assert fresh.backend is not in_flight.backend and manager.route_state("a") is ModelState.READY
    stats = {s["route"]: s for s in manager.snapshot()}["a"]
    assert stats["evictions"] == 1 and stats["loads"] == 2
    manager.release(in_flight)
    manager.release(fresh)
    await manager.close()
    assert rec.live == set()

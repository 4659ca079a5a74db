"""Load: concurrent traffic over three routes under the exclusive policy, and the bounded queues.

Every request gets a 200 or a documented 503 (`overloaded`: the model's queue is full;
`model_unavailable`: it did not become ready in time) with Retry-After and the envelope;
none is lost, none hangs. Fast tests drive the real app with a stub backend; one test
runs three real tiny engines (about two minutes on two CPU cores).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from llmhost.config import parse_catalog
from tests.apphelp import ServerThread, WatchedTurn, make_app, running, tiny_llm_route, until
from tests.suites.test_fuzz import ServingRecorder

ROUTES = ("coder", "chat", "general")
DOCUMENTED_503 = {"overloaded", "model_unavailable"}


def _catalog(host: str, models: dict[str, str]) -> str:
    text = f"[host]\n{host}\n"
    for route, model in models.items():
        text += f'[routes.{route}]\nkind = "llm"\nmodel = "{model}"\nserved_names = ["{route}-model"]\n'
    return text


@dataclass
class Outcome:
    index: int
    route: str
    status: int
    seconds: float
    retry_after: str | None
    body: str


def check_outcome(outcome: Outcome) -> None:
    """A 200 with a complete reply, or a documented 503 with Retry-After and the envelope."""
    where = (outcome.index, outcome.route, outcome.status, outcome.body[:300])
    if outcome.status == 200:
        if outcome.body.startswith("data: "):
            events = [line for line in outcome.body.splitlines() if line]
            assert events[-1] == "data: [DONE]", where
            assert not any('"error"' in e for e in events), where
        else:
            assert "error" not in json.loads(outcome.body), where
        return
    assert outcome.status == 503, where
    assert outcome.retry_after is not None and int(outcome.retry_after) >= 1, where
    body = json.loads(outcome.body)
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, where
    assert body["error"]["code"] in DOCUMENTED_503, where


def plan(count: int, seed: int) -> list[tuple[str, str, dict[str, Any]]]:
    """`count` requests in a fixed random order: route, path style, chat/completion, streamed."""
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        route = rng.choice(ROUTES)
        kind = rng.choice(["chat", "completions"])
        stream = rng.random() < 0.25
        prefix = rng.choice(["/v1", f"/{route}/v1", "/openai/v1"])
        path = f"{prefix}/chat/completions" if kind == "chat" else f"{prefix}/completions"
        body: dict[str, Any] = {"model": f"{route}-model", "max_tokens": 4, "stream": stream}
        if kind == "chat":
            body["messages"] = [{"role": "user", "content": "Say hi"}]
        else:
            body["prompt"] = "Once upon a time"
        requests.append((route, path, body))
    return requests


async def drive(
    client: httpx.AsyncClient, count: int, concurrency: int, seed: int, backoff_cap: float
) -> list[Outcome]:
    """`concurrency` clients work through the plan; after a 503 each waits Retry-After, capped."""
    todo = list(enumerate(plan(count, seed)))
    todo.reverse()
    outcomes: list[Outcome] = []

    async def one(index: int, route: str, path: str, body: dict[str, Any]) -> Outcome:
        started = time.monotonic()
        async with client.stream("POST", path, json=body) as response:
            text = (await response.aread()).decode()
        return Outcome(
            index,
            route,
            response.status_code,
            time.monotonic() - started,
            response.headers.get("Retry-After"),
            text,
        )

    async def worker() -> None:
        while todo:
            index, (route, path, body) = todo.pop()
            outcome = await one(index, route, path, body)
            outcomes.append(outcome)
            if outcome.status == 503 and outcome.retry_after:
                await asyncio.sleep(min(float(outcome.retry_after), backoff_cap))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def model_stats(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["route"]: m for m in stats["models"]}


# ---- fast: the real app, a stub backend ---------------------------------------------------


async def test_full_model_queue_is_503_with_retry_after_over_http() -> None:
    recorder = ServingRecorder(load_seconds=2.0)
    catalog = parse_catalog(_catalog("max_waiting = 3\nmax_in_flight = 4", {"coder": "org/coder"}))
    app = make_app(catalog, factory=recorder.factory)
    body = {"model": "coder-model", "messages": [{"role": "user", "content": "hi"}]}
    async with running(app) as client:
        # A refused body imports vLLM's request models first (seconds), so that the three
        # requests below queue within the load's two seconds.
        assert (await client.post("/v1/chat/completions", json={"model": "coder-model"})).status_code == 400
        waiting = [asyncio.create_task(client.post("/v1/chat/completions", json=body)) for _ in range(3)]
        manager = app.state.host.manager
        await asyncio.wait_for(until(manager, lambda: manager.snapshot()[0]["waiting"] == 3), 30)
        started = time.monotonic()
        full = await client.post("/v1/chat/completions", json=body)
        assert time.monotonic() - started < 0.5, "refused at once, not after waiting"
        assert full.status_code == 503
        assert int(full.headers["Retry-After"]) >= 1
        assert full.json()["error"] == {
            "message": full.json()["error"]["message"],
            "type": "server_error",
            "param": None,
            "code": "overloaded",
        }
        assert "3 requests are already waiting" in full.json()["error"]["message"]
        assert (await client.get("/healthz")).status_code == 200  # the host itself is fine
        assert [r.status_code for r in await asyncio.gather(*waiting)] == [200, 200, 200]
        coder = model_stats((await client.get("/stats")).json())["coder"]
        assert coder["waiting"] == 0 and coder["in_flight"] == 0 and coder["loads"] == 1
        # The queue drained: a new request is served.
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
    assert recorder.served == ["chat.completion coder"] * 4


async def test_requests_to_a_busy_ready_model_are_bounded_too() -> None:
    recorder = ServingRecorder(load_seconds=0)
    app = make_app(
        parse_catalog(_catalog("max_waiting = 3\nmax_in_flight = 4", {"coder": "org/coder"})),
        factory=recorder.factory,
    )
    body = {"model": "coder-model", "messages": [{"role": "user", "content": "hi"}]}
    async with running(app) as client:
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200  # ready
        gate = asyncio.Event()
        entered = asyncio.Event()  # a reply began: a request is in flight
        manager = app.state.host.manager
        backend = manager.slots["coder"].backend
        real = backend.chat

        class Slow:  # the engine is busy: replies take until the gate opens
            async def create_chat_completion(self, request: Any, raw_request: Any) -> Any:
                entered.set()
                await gate.wait()
                return await real.create_chat_completion(request, raw_request)

        backend.chat = Slow()
        requests: list[asyncio.Task[httpx.Response]] = []

        def accounted() -> int:
            coder = manager.snapshot()[0]
            return int(coder["in_flight"] + coder["waiting"] + sum(r.done() for r in requests))

        async def arrived(request: asyncio.Task[httpx.Response]) -> None:
            """Until every request so far is in flight, waiting or answered: checked again when
            a reply begins (one granted at once), after a pass (one queued: its ticket pokes
            the scheduler) and when this request is answered (refused)."""
            while accounted() < len(requests):
                entered.clear()
                wakers = {
                    asyncio.ensure_future(manager.scheduler.next_pass()),
                    asyncio.ensure_future(entered.wait()),
                }
                await asyncio.wait({*wakers, request}, return_when=asyncio.FIRST_COMPLETED)
                for waker in wakers:
                    waker.cancel()

        for _ in range(20):  # arriving one after another, as a busy client's requests do
            requests.append(asyncio.create_task(client.post("/v1/chat/completions", json=body)))
            await asyncio.wait_for(arrived(requests[-1]), 30)
        assert accounted() == 20
        gate.set()
        statuses = Counter(r.status_code for r in await asyncio.gather(*requests))
    # 4 served at once, 3 waiting, the rest refused at once
    assert statuses == {200: 7, 503: 13}, dict(statuses)


async def test_full_image_queue_is_503_with_retry_after_over_http() -> None:
    recorder = ServingRecorder(load_seconds=0)
    catalog = parse_catalog(
        '[routes.vision]\nkind = "diffusion"\nmodel = "org/sd"\nserved_names = ["vision-diffusion"]\n'
        "[routes.vision.pipeline]\nmax_queue = 2\n"
    )
    app = make_app(catalog, factory=recorder.factory)
    body = {"prompt": "a fox", "width": 64, "height": 64}
    async with running(app) as client:
        jobs = app.state.image_queue
        jobs.turn = turn = WatchedTurn()
        async with jobs.turn:  # the GPU is busy: image jobs queue for their turn
            queued = [asyncio.create_task(client.post("/vision/generate", json=body)) for _ in range(2)]
            await asyncio.wait_for(turn.queued(2), 60)
            assert jobs.waiting.get("vision") == 2
            full = await client.post("/vision/generate", json=body)
            assert full.status_code == 503 and int(full.headers["Retry-After"]) >= 1
            assert full.json()["error"]["code"] == "overloaded"
        assert [r.status_code for r in await asyncio.gather(*queued)] == [200, 200]
        assert jobs.waiting["vision"] == 0


async def test_200_requests_over_three_routes_with_a_stub_backend() -> None:
    """The load test's shape in seconds: swaps are instant, the queue bound is small."""
    recorder = ServingRecorder(load_seconds=0.05, stop_seconds=0.02)
    host = 'policy = "exclusive"\nmax_waiting = 4\nmax_hold_seconds = 0.05'
    app = make_app(parse_catalog(_catalog(host, {r: f"org/{r}" for r in ROUTES})), factory=recorder.factory)
    async with running(app) as client:
        outcomes = await asyncio.wait_for(drive(client, 200, 16, seed=7, backoff_cap=0.05), 60)
        stats = model_stats((await client.get("/stats")).json())
    assert sorted(o.index for o in outcomes) == list(range(200)), "every request answered once"
    for outcome in outcomes:
        check_outcome(outcome)
    assert Counter(o.status for o in outcomes)[200] > 0
    assert all(s["in_flight"] == 0 and s["waiting"] == 0 for s in stats.values()), stats
    resident: set[str] = set()
    for event in recorder.events:  # exclusive: a load only once the previous model stopped
        action, route = event.split()
        if action == "load":
            assert not resident, recorder.events
            resident.add(route)
        else:
            resident.discard(route)
    assert len(recorder.events) >= 3, "the traffic made the host swap"


# ---- real tiny engines ----------------------------------------------------------------------

START_TIMEOUT = 150  # also bounds one engine start; generous for a busy CI machine


@pytest.mark.engine
@pytest.mark.timeout(540)
async def test_200_requests_at_concurrency_16_over_three_engine_routes(tiny_models: Any) -> None:
    host = (
        'policy = "exclusive"\n'
        f"start_timeout_seconds = {START_TIMEOUT}\n"
        "max_hold_seconds = 1\n"
        "drain_timeout_seconds = 15\n"
        "max_waiting = 4\n"
        "retry_backoff_seconds = 1"
    )
    models = {"coder": tiny_models.llm, "chat": tiny_models.llm_alt, "general": tiny_models.llm}
    tables = [tiny_llm_route(route, model, f"{route}-model") for route, model in models.items()]
    catalog = parse_catalog("\n".join([f"[host]\n{host}", *tables]))
    bound = START_TIMEOUT + 60  # longest wait for a lease, plus four tokens under load
    health_latency: list[float] = []

    async def watch_health(client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            assert (await client.get("/healthz")).status_code == 200
            health_latency.append(time.monotonic() - started)
            await asyncio.sleep(0.5)

    with ServerThread(make_app(catalog)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=bound) as client:
            stop = asyncio.Event()
            health = asyncio.create_task(watch_health(client, stop))
            started = time.monotonic()
            outcomes = await drive(client, 200, 16, seed=20240611, backoff_cap=1.0)
            elapsed = time.monotonic() - started
            stop.set()
            await health
            stats = model_stats((await client.get("/stats")).json())

    statuses = Counter((o.route, o.status) for o in outcomes)
    summary = f"{elapsed:.0f} s, {dict(statuses)}, loads {[stats[r]['loads'] for r in ROUTES]}"
    assert sorted(o.index for o in outcomes) == list(range(200)), f"lost requests: {summary}"
    for outcome in outcomes:
        check_outcome(outcome)
        assert outcome.seconds < bound, (outcome, summary)
    for route in ROUTES:
        assert statuses[(route, 200)] > 0, f"{route} never served: {summary}"
        assert stats[route]["in_flight"] == 0 and stats[route]["waiting"] == 0, stats[route]
        assert stats[route]["last_error"] is None, stats[route]
    assert sum(stats[r]["loads"] for r in ROUTES) >= 3, summary
    # /healthz never waits for a load, a swap or the traffic.
    assert max(health_latency) < 5.0, f"slowest /healthz {max(health_latency):.2f} s; {summary}"
    print(summary, f"slowest /healthz {max(health_latency):.2f} s")

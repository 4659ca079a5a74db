"""Image jobs and leases: a job waiting for the GPU turn holds no lease on its model.

Driven with fake pipelines (tests/fakes.py plus a `generate` the test controls): what is
tested is the order of queue, turn and lease, not the drawing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmhost.backends.base import ImageJob, ImageResult
from llmhost.config import HostConfig, RouteConfig
from llmhost.gpu.monitor import NullMonitor
from llmhost.server.app import create_app
from llmhost.settings import Settings
from tests import catalogs
from tests.apphelp import running
from tests.fakes import FakeBackend, Recorder


class FakePipeline(FakeBackend):
    """A fake image backend whose jobs run until the test lets each one finish."""

    rec: PipelineRecorder

    async def generate(self, job: ImageJob) -> ImageResult:
        self.rec.events.append(f"generate {self.route.name} {job.prompt}")
        self.rec.started(job.prompt).set()
        await self.rec.finish(job.prompt).wait()
        return ImageResult(png=[b"png"], width=64, height=64, seed=job.seed, elapsed=0.0)


@dataclass
class PipelineRecorder(Recorder):
    _started: dict[str, asyncio.Event] = field(default_factory=dict)
    _finish: dict[str, asyncio.Event] = field(default_factory=dict)

    def started(self, prompt: str) -> asyncio.Event:
        return self._started.setdefault(prompt, asyncio.Event())

    def finish(self, prompt: str) -> asyncio.Event:
        return self._finish.setdefault(prompt, asyncio.Event())

    @asynccontextmanager
    async def finishing_all(self) -> AsyncIterator[None]:
        """On the way out, every job may finish: a failed test must not leave the host
        draining jobs that wait for it."""
        try:
            yield
        finally:
            for prompt in ("first", "queued"):
                self.finish(prompt).set()

    def factory(self, route: RouteConfig, host: HostConfig) -> FakePipeline:
        return FakePipeline(route, self)


async def until(check: Callable[[], bool]) -> None:
    """Let the event loop run until `check()` holds (steps of the loop, no clock)."""
    for _ in range(10_000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def started(rec: PipelineRecorder, prompt: str, answer: asyncio.Future[httpx.Response]) -> None:
    """Wait until the job `prompt` runs in the pipeline; fail if it was answered instead."""
    running_job: asyncio.Future[Any] = asyncio.ensure_future(rec.started(prompt).wait())
    await asyncio.wait({running_job, answer}, return_when=asyncio.FIRST_COMPLETED)
    if not running_job.done():
        running_job.cancel()
        raise AssertionError(f"{prompt} was answered without running: {answer.result().text}")


def generate(client: httpx.AsyncClient, route: str, prompt: str) -> asyncio.Future[httpx.Response]:
    body = {"prompt": prompt, "num_inference_steps": 1}
    return asyncio.ensure_future(client.post(f"/{route}/generate", json=body))


async def test_a_queued_image_job_holds_no_lease_and_an_eviction_does_not_wait_for_it() -> None:
    # One GPU turn for both pipelines; each evicts the other (exclusive). The drain bound is
    # long: were the queued job holding vision's lease, sketch would wait for it to finish.
    rec = PipelineRecorder(load_seconds=0, stop_seconds=0)
    routes = {
        "vision": catalogs.diffusion("vision-diffusion", "org/vision"),
        "sketch": catalogs.diffusion("sketch-diffusion", "org/sketch"),
    }
    catalog = catalogs.catalog(routes, policy="exclusive", max_hold_seconds=0, drain_timeout_seconds=600)
    app = create_app(
        Settings(_env_file=None),
        catalog,
        gpu=NullMonitor("no GPU in tests"),
        backend_factory=rec.factory,
        preflight=None,
        preload=False,
        standby_query=lambda: None,
    )
    async with running(app) as client, rec.finishing_all():
        manager = app.state.host.manager
        queue = app.state.image_queue
        first = generate(client, "vision", "first")
        await started(rec, "first", first)  # runs: holds the turn and vision's lease
        queued = generate(client, "vision", "queued")
        await until(lambda: queue.waiting.get("vision") == 1)
        sketch: Any = asyncio.ensure_future(manager.acquire("sketch"))  # vision must go
        rec.finish("first").set()
        assert (await first).status_code == 200
        # vision unloads as soon as the running job is done: the queued job is not waited for.
        lease = await asyncio.wait_for(sketch, 30)
        assert not rec.started("queued").is_set()
        manager.release(lease)
        # The queued job then gets its turn and loads vision again; nothing revoked it.
        await started(rec, "queued", queued)
        rec.finish("queued").set()
        assert (await queued).status_code == 200
        assert rec.events == [
            "load vision",
            "generate vision first",
            "stop vision",
            "load sketch",
            "stop sketch",
            "load vision",
            "generate vision queued",
        ]

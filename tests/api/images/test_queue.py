"""The image queue: a bounded place per route, given up on leaving."""

from __future__ import annotations

import pytest

from llmhost.api.images.queue import ImageQueue
from llmhost.config import parse_catalog
from llmhost.errors import Overloaded

ROUTE = parse_catalog(
    '[routes.vision]\nkind = "diffusion"\nmodel = "org/sd"\n[routes.vision.pipeline]\nmax_queue = 2\n'
).routes["vision"]


def test_full_queue_is_overloaded_with_retry_after_from_recent_jobs() -> None:
    queue = ImageQueue()
    queue.record(ROUTE, 4.0)
    with queue.place(ROUTE), queue.place(ROUTE):
        assert queue.waiting["vision"] == 2
        with pytest.raises(Overloaded, match="max_queue is 2") as refused:
            with queue.place(ROUTE):
                pass
        assert refused.value.retry_after == 12.0  # (2 waiting + this one) x 4 s
    assert queue.waiting["vision"] == 0


def test_a_place_is_left_once() -> None:
    queue = ImageQueue()
    with queue.place(ROUTE) as place:
        place.leave()  # the job got its turn
        assert queue.waiting["vision"] == 0
    assert queue.waiting["vision"] == 0  # leaving the block does not count it twice


def test_recent_duration_is_smoothed() -> None:
    queue = ImageQueue()
    queue.record(ROUTE, 10.0)
    queue.record(ROUTE, 20.0)
    assert queue.job_seconds["vision"] == pytest.approx(13.0)

"""Seconds of one kind of event (cold starts, wakes), kept in bounded memory.

The histogram /metrics exports is a set of counters (per bucket, count, sum) updated as
each value comes, so a scrape costs the same after ten thousand loads as after one; the
summary /stats shows (last, median, max) is over the last `WINDOW` values only.
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Any

# Values the summary looks at: recent enough to describe the model as it runs now.
WINDOW = 100


class Durations:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self._at_most = [0] * len(buckets)  # values <= each bucket's bound (cumulative)
        self.count = 0
        self.sum = 0.0
        self.recent: deque[float] = deque(maxlen=WINDOW)

    def add(self, seconds: float) -> None:
        self.count += 1
        self.sum += seconds
        self.recent.append(seconds)
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                self._at_most[i] += 1

    def histogram(self) -> dict[str, Any]:
        return {
            "buckets": [[bound, n] for bound, n in zip(self.buckets, self._at_most, strict=True)],
            "count": self.count,
            "sum": self.sum,
        }

    def summary(self) -> dict[str, float | None]:
        """The last value, and the median and maximum of the last WINDOW."""
        recent = self.recent
        return {
            "last": round(recent[-1], 2) if recent else None,
            "median": round(statistics.median(recent), 2) if recent else None,
            "max": round(max(recent), 2) if recent else None,
        }

"""Seasonal time: how much traffic each hour of the 13 weeks gets, and timestamps without datetime per row.

Time is an hour index (0 is START) plus a second inside the hour, so a row's timestamp is two list
lookups; formatting a datetime per row would cost more than the rest of the row.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from itertools import accumulate

BASE_DATE = datetime(2025, 6, 2)  # exclusive end of generated time, UTC (naive)
WEEKS = 13
START = BASE_DATE - timedelta(weeks=WEEKS)  # 2025-03-03, a Monday: weekly cohorts start on a boundary
HOURS = WEEKS * 7 * 24
SECONDS = HOURS * 3600

# Working hours UTC are busiest; weekends carry about a third of a weekday's traffic.
_HOUR_SHAPE = [0.15, 0.1, 0.08, 0.08, 0.1, 0.18, 0.3, 0.5, 0.8, 1.0, 1.0, 0.95, 0.85, 0.95, 1.0, 1.0, 0.9, 0.8]
_HOUR_SHAPE += [0.65, 0.55, 0.45, 0.35, 0.25, 0.2]
_WEEKDAY_SHAPE = [1.0, 1.0, 1.0, 0.95, 0.85, 0.35, 0.3]
_GROWTH = 0.3  # the product grows: the last week is 30% busier than the first


class Timeline:
    """The hours of the period with their traffic weights: hour of day, day of week, growth, and a
    day-to-day wobble drawn once per seed (real days are never quite alike)."""

    def __init__(self, rng: random.Random) -> None:
        self._hour_prefix = [(START + timedelta(hours=h)).strftime("%Y-%m-%d %H:") for h in range(HOURS)]
        self.mmss = [f"{s // 60:02d}:{s % 60:02d}" for s in range(3600)]  # a second of the hour as MM:SS
        days = [_WEEKDAY_SHAPE[d % 7] * rng.lognormvariate(0, 0.12) for d in range(HOURS // 24)]
        self.weights = [_HOUR_SHAPE[h % 24] * days[h // 24] * (1 + _GROWTH * h / HOURS) for h in range(HOURS)]
        self._cum = list(accumulate(self.weights))
        self._max = max(self.weights)

    def hour_counts(self, rng: random.Random, n: int) -> list[int]:
        """How many of `n` rows fall in each hour: the expected count with Poisson-like noise."""
        total = self._cum[-1]
        counts = [max(0, round(e + rng.gauss(0, e**0.5))) for e in (n * w / total for w in self.weights)]
        surplus = sum(counts) - n
        step = 1 if surplus > 0 else -1
        while surplus:  # the noise adds up to a few hundred rows too many or too few: settle them by weight
            hour = rng.choices(range(HOURS), cum_weights=self._cum)[0]
            if step < 0 or counts[hour]:
                counts[hour] -= step
                surplus -= step
        return counts

    def shaped_hour(self, rng: random.Random, first: int, mean_gap: float) -> int:
        """An hour at or after `first`, about `mean_gap` hours later, on the daily and weekly shape.

        The exponential gap wraps around the rest of the period: a short gap is barely touched and a
        very long one becomes uniform. Thinning by the hour's weight gives the seasonal shape.
        """
        span = HOURS - first
        for _ in range(8):
            hour = first + int(rng.expovariate(1.0 / mean_gap)) % span
            if rng.random() * self._max < self.weights[hour]:
                break
        return hour

    def hour_prefix(self, hour: int) -> str:
        """'YYYY-MM-DD HH:' of an hour: a row's timestamp is this plus `mmss[second]`."""
        return self._hour_prefix[hour]

    def stamp_seconds(self, seconds: int) -> str:
        """`seconds` since START."""
        return self._hour_prefix[seconds // 3600] + self.mmss[seconds % 3600]


def hour_of(text: str) -> int:
    """The hour index of a 'YYYY-MM-DD HH:MM:SS' inside the period."""
    return int((datetime.strptime(text, "%Y-%m-%d %H:%M:%S") - START).total_seconds() // 3600)

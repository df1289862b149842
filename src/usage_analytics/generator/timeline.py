"""Seasonal time: which hours get traffic, and timestamps formatted without datetime per row."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from itertools import accumulate

BASE_DATE = datetime(2025, 6, 2)  # exclusive end of generated time, UTC (naive)
WEEKS = 13
START = BASE_DATE - timedelta(weeks=WEEKS)  # 2025-03-03, a Monday
HOURS = WEEKS * 7 * 24

# Working hours UTC are busiest; weekends carry about a third of a weekday's traffic.
_HOUR_SHAPE = [0.15, 0.1, 0.08, 0.08, 0.1, 0.18, 0.3, 0.5, 0.8, 1.0, 1.0, 0.95, 0.85, 0.95, 1.0, 1.0, 0.9, 0.8]
_HOUR_SHAPE += [0.65, 0.55, 0.45, 0.35, 0.25, 0.2]
_WEEKDAY_SHAPE = [1.0, 1.0, 1.0, 0.95, 0.85, 0.35, 0.3]


class Timeline:
    """Hours of the period with their traffic weights; `stamp` formats an hour index and second."""

    def __init__(self) -> None:
        self.hour_prefix = [(START + timedelta(hours=h)).strftime("%Y-%m-%d %H:") for h in range(HOURS)]
        self.weights = [_HOUR_SHAPE[h % 24] * _WEEKDAY_SHAPE[(h // 24) % 7] for h in range(HOURS)]
        self._cum = list(accumulate(self.weights))
        self._max = max(self.weights)
        self._mmss = [f"{s // 60:02d}:{s % 60:02d}" for s in range(3600)]

    def hours(self, rng: random.Random, k: int) -> list[int]:
        return rng.choices(range(HOURS), cum_weights=self._cum, k=k)

    def accept(self, rng: random.Random, hour: int) -> bool:
        """Thin an hour drawn some other way to the same daily and weekly shape."""
        return rng.random() * self._max < self.weights[hour]

    def stamp(self, hour: int, second: int) -> str:
        return self.hour_prefix[hour] + self._mmss[second]

    def stamp_seconds(self, seconds: int) -> str:
        """`seconds` since START."""
        return self.stamp(seconds // 3600, seconds % 3600)


def hour_of(text: str) -> int:
    """The hour index of a 'YYYY-MM-DD HH:MM:SS' inside the period."""
    return int((datetime.strptime(text, "%Y-%m-%d %H:%M:%S") - START).total_seconds() // 3600)

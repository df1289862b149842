"""tenant_rate_limits (seed 004): configuration, not traffic, so its size does not follow `rows`.

About half the (tenant, endpoint) pairs of api_logs have a limit, set before the first request. Some
pairs later get a second row with a later `updated_at` and other limits; the latest row wins. The
rows are shuffled, so a replacement can come before the row it replaces: readers must go by
`updated_at`, not by arrival order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

from .api_logs import ENDPOINT_PATHS, LIMITED, TENANTS
from .timeline import HOURS, START

UPDATES = 15
# requests per minute; an hour allows 40 minutes' worth and a day 600 (bursts, not a steady rate)
PER_MINUTE = [60, 100, 300, 600, 1200]
# LIMITED starts generous and is tightened in May to limits that its burst exceeds: a reader that
# keeps the first row instead of the latest reports no limited pair at all.
LIMITED_LIMITS = (40, 500, 6000)


def _limits(per_minute: int) -> tuple[int, int, int]:
    return per_minute, per_minute * 40, per_minute * 600


def _stamp(hours_from_start: float) -> str:
    return (START + timedelta(hours=hours_from_start)).strftime("%Y-%m-%d %H:%M:%S")


def tenant_rate_limits(rng: random.Random) -> Iterator[str]:
    pairs = [(t, e) for t in TENANTS for e in ENDPOINT_PATHS if (t, e) == LIMITED or rng.random() < 0.5]
    rows = []
    first = {}
    for pair in pairs:
        created = _stamp(-24 * rng.uniform(7, 40))  # some weeks before the first request
        per_minute = 600 if pair == LIMITED else rng.choice(PER_MINUTE)
        first[pair] = (per_minute, created)
        rows.append((pair, _limits(per_minute), created, created))
    updated = rng.sample([p for p in pairs if p != LIMITED], UPDATES - 1) + [LIMITED]
    for pair in updated:
        per_minute, created = first[pair]
        if pair == LIMITED:
            limits, when = LIMITED_LIMITS, _stamp(24 * rng.uniform(70, 88))  # mid-May, before the burst
        else:
            limits = _limits(rng.choice([p for p in PER_MINUTE if p != per_minute]))
            when = _stamp(24 * rng.uniform(14, HOURS / 24 - 2))
        rows.append((pair, limits, created, when))
    rng.shuffle(rows)
    for (tenant, endpoint), (rpm, rph, rpd), created, updated_at in rows:
        yield (
            f'{{"tenant_id":"{tenant}","endpoint":"{endpoint}","requests_per_minute":{rpm},'
            f'"requests_per_hour":{rph},"requests_per_day":{rpd},"created_at":"{created}",'
            f'"updated_at":"{updated_at}"}}'
        )

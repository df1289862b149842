"""Seeded NDJSON fixtures for the five datasources: same seed, same bytes.

`generate()` writes `<source>.ndjson` files. Without `rows` it writes the small committed fixtures;
with `rows=N` every event source gets N rows (tenant_rate_limits is configuration and stays small).
`dirty` mixes in that share of malformed rows, each of which the server must quarantine; every one
that is still a JSON object carries an id starting with `dirty_`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from .api import api_logs, tenant_rate_limits
from .dirty import spoil
from .pools import Pools
from .product import app_events, events, feature_events
from .timeline import BASE_DATE, Timeline

SOURCES = ("events", "feature_events", "app_events", "api_logs", "tenant_rate_limits")
FIXTURE_ROWS = {"events": 5000, "feature_events": 3000, "app_events": 4000, "api_logs": 8000}
CHUNK = 50_000

__all__ = ["BASE_DATE", "SOURCES", "generate"]


def _lines(source: str, rng: random.Random, timeline: Timeline, pools: Pools, rows: int | None) -> Iterator[str]:
    if source == "tenant_rate_limits":
        return tenant_rate_limits(rng, timeline)
    n = rows or FIXTURE_ROWS[source]
    make = {"events": events, "feature_events": feature_events, "app_events": app_events, "api_logs": api_logs}
    return make[source](rng, timeline, pools, n)


def generate(
    out_dir: Path,
    *,
    seed: int = 7,
    rows: int | None = None,
    sources: Iterable[str] | None = None,
    dirty: float = 0.0,
) -> dict[str, dict]:
    wanted = list(sources or SOURCES)
    unknown = set(wanted) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown source {', '.join(sorted(unknown))}; choose from {', '.join(SOURCES)}")
    if not 0 <= dirty <= 1:
        raise ValueError("dirty must be a fraction between 0 and 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timeline, pools = Timeline(), Pools(seed)
    stats = {}
    for index, source in enumerate(SOURCES):
        if source not in wanted:
            continue
        rng = random.Random(seed * 1000 + index)  # each source its own stream: one source alone is the same
        path = out_dir / f"{source}.ndjson"
        total = spoiled = 0
        with open(path, "w", encoding="utf-8") as handle:
            chunk: list[str] = []
            for line in _lines(source, rng, timeline, pools, rows):
                if dirty and rng.random() < dirty:
                    line = spoil(rng, source, line)
                    spoiled += 1
                chunk.append(line)
                if len(chunk) >= CHUNK:
                    handle.write("\n".join(chunk) + "\n")
                    total, chunk = total + len(chunk), []
            if chunk:
                handle.write("\n".join(chunk) + "\n")
                total += len(chunk)
        stats[source] = {"rows": total, "dirty": spoiled, "path": str(path)}
    return stats

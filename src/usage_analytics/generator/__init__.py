"""Seeded NDJSON fixtures for the five datasources: same seed, same bytes.

`generate()` writes `<source>.ndjson` files. Without `rows` it writes the small committed fixtures;
with `rows=N` every event source gets N rows (tenant_rate_limits is configuration and stays small).
`dirty` turns that share of the lines into malformed ones, each of which the server must quarantine;
every one that still parses as JSON carries an id starting with `dirty_`.

Nothing reads the clock or depends on hash order: every random stream is a random.Random seeded
from (seed, source), so one source generated alone is the same as in a full run.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from .api_logs import api_logs
from .dirty import spoil
from .pools import Pools
from .product import app_events, events, feature_events
from .rate_limits import tenant_rate_limits
from .timeline import BASE_DATE, Timeline

SOURCES = ("events", "feature_events", "app_events", "api_logs", "tenant_rate_limits")
FIXTURE_ROWS = {"events": 5000, "feature_events": 3000, "app_events": 4000, "api_logs": 8000}
CHUNK = 20_000  # lines per write: memory stays flat for any number of rows

__all__ = ["BASE_DATE", "SOURCES", "generate"]


def _lines(source: str, rng: random.Random, timeline: Timeline, pools: Pools, rows: int | None) -> Iterator[str]:
    if source == "tenant_rate_limits":
        return tenant_rate_limits(rng)
    make = {"events": events, "feature_events": feature_events, "app_events": app_events, "api_logs": api_logs}
    return make[source](rng, timeline, pools, FIXTURE_ROWS[source] if rows is None else rows)


def generate(
    out_dir: Path,
    *,
    seed: int = 7,
    rows: int | None = None,
    sources: Iterable[str] | None = None,
    dirty: float = 0.0,
) -> dict[str, dict]:
    """Write out_dir/<source>.ndjson for each source; {source: {"rows", "dirty", "path"}}."""
    wanted = list(SOURCES if sources is None else sources)
    unknown = sorted(set(wanted) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    if rows is not None and rows < 0:
        raise ValueError("rows must be at least 0")
    if not 0 <= dirty <= 1:
        raise ValueError("dirty must be a fraction between 0 and 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timeline, pools = Timeline(random.Random(f"{seed}/timeline")), Pools(seed)
    stats = {}
    for source in (s for s in SOURCES if s in wanted):
        # the dirt has its own stream: the good lines of a dirty run are those of a clean run
        rng, dirt = random.Random(f"{seed}/{source}"), random.Random(f"{seed}/{source}/dirty")
        path = out_dir / f"{source}.ndjson"
        total = spoiled = 0
        lines = _lines(source, rng, timeline, pools, rows)
        with open(path, "w", encoding="utf-8") as handle:
            while chunk := list(islice(lines, CHUNK)):
                if dirty:
                    for i in range(len(chunk)):
                        if dirt.random() < dirty:
                            chunk[i] = spoil(dirt, source, chunk[i])
                            spoiled += 1
                handle.write("\n".join(chunk))
                handle.write("\n")
                total += len(chunk)
        stats[source] = {"rows": total, "dirty": spoiled, "path": str(path)}
    return stats

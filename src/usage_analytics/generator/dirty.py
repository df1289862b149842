"""Malformed rows for quarantine tests: each kind is one Tinybird sends to `<datasource>_quarantine`."""

from __future__ import annotations

import json
import random

ID_COLUMN = {"tenant_rate_limits": "tenant_id", "api_logs": "request_id"}
NUMERIC = {"api_logs": "status_code", "tenant_rate_limits": "requests_per_minute"}
TIME = {"tenant_rate_limits": "updated_at"}


def spoil(rng: random.Random, source: str, line: str) -> str:
    """The same row, broken one way: a wrong type, a missing or null value, or not JSON at all."""
    kind = rng.randrange(5)
    if kind == 0:
        return line[: rng.randrange(5, max(6, len(line) // 2))]  # a truncated line
    row = json.loads(line)
    id_column = ID_COLUMN.get(source, "event_id")
    row[id_column] = f"dirty_{row[id_column]}"
    time_column = TIME.get(source, "timestamp")
    if kind == 1:
        row[time_column] = "not-a-date"
    elif kind == 2:
        del row[time_column]
    elif kind == 3:
        row[time_column] = None
    elif source in NUMERIC:
        row[NUMERIC[source]] = "abc"
    else:
        row[time_column] = "2025-13-45 99:99:99"
    return json.dumps(row, separators=(",", ":"))

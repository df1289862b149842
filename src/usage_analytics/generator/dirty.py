"""Malformed rows for quarantine tests: each is a row the server must send to `<datasource>_quarantine`.

A value that does not fit its column type, a missing or null value in a column that is neither
Nullable nor has a DEFAULT, or a line that is not a JSON object. Every line that still parses as JSON
carries an id starting with `dirty_`, so tests can tell it from the good rows around it.
"""

from __future__ import annotations

import json
import random

from .pools import enc

KINDS = ("truncated", "not_an_object", "unparseable", "missing", "null")
ID_COLUMN = {"api_logs": "request_id", "tenant_rate_limits": "tenant_id"}  # the others: event_id
TIME_COLUMN = {"tenant_rate_limits": "updated_at"}  # the others: timestamp
NUMBER_COLUMNS = {
    "api_logs": ["status_code", "response_time_ms", "request_size_bytes"],
    "tenant_rate_limits": ["requests_per_minute", "requests_per_hour"],
}


def spoil(rng: random.Random, source: str, line: str) -> str:
    """The same row, broken one way."""
    kind = rng.choice(KINDS)
    if kind == "truncated":
        return line[: rng.randrange(5, len(line) // 2)]
    row = json.loads(line)
    id_column = ID_COLUMN.get(source, "event_id")
    row[id_column] = f"dirty_{row[id_column]}"
    if kind == "not_an_object":
        return enc(list(row.values()))  # a row sent as an array: the id still says dirty_ wherever it lands
    time_column = TIME_COLUMN.get(source, "timestamp")
    column = rng.choice([time_column, *NUMBER_COLUMNS.get(source, [])])
    if kind == "unparseable":
        row[column] = "not-a-date" if column == time_column else "abc"
    elif kind == "missing":
        del row[column]
    else:
        row[column] = None
    return enc(row)

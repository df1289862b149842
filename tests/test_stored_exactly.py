"""A row is stored as it was sent, or quarantined with the reason: never stored changed.

Dates and times outside their type's range, or named only in part, are not clamped or completed; a JSON
object with a key given twice has no one value; a CSV file that starts with a byte order mark keeps its header.
One server, on the `events` slice and a datasource of every date and time type, serves the whole module.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap

import pytest
from conftest import EVENT_COLUMNS, ServerProcess, event, slice_project

pytestmark = pytest.mark.embedded

MOMENTS = """\
DESCRIPTION >
    One column of each date and time type, Nullable or with a DEFAULT, and values read through nested objects.

SCHEMA >
    `id` String `json:$.id`,
    `at` Nullable(DateTime) `json:$.at`,
    `at_ms` DateTime64(3, 'UTC') `json:$.at_ms` DEFAULT toDateTime64('2000-01-01 00:00:00', 3),
    `day` Date `json:$.day` DEFAULT '2000-01-01',
    `wide_day` Nullable(Date32) `json:$.wide_day`,
    `source` String `json:$.meta.source` DEFAULT '',
    `host` String `json:$.meta.origin.host` DEFAULT ''

ENGINE MergeTree
ENGINE_SORTING_KEY id
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("stored_exactly")
    project = slice_project(root / "project")
    (project / "datasources/moments.datasource").write_text(textwrap.dedent(MOMENTS))
    process = ServerProcess(project, root / "data")
    yield process.start()
    process.stop()


def post(target, datasource: str, body: str):
    params = {"name": datasource, "wait": "true"}
    return target.http.post(target.url("/v0/events"), params=params, data=body.encode(), headers=target.auth())


def quarantined(target, datasource: str, id_column: str, prefix: str) -> dict[str, list[str]]:
    where = f"startsWith({id_column}, '{prefix}')"
    rows = target.sql(f"SELECT {id_column} AS id, c__error FROM {datasource}_quarantine WHERE {where}")
    return {r["id"]: r["c__error"] for r in rows}


DATETIME_RANGE = ("1970-01-01 00:00:00", "2106-02-07 06:28:15")
DATE_RANGE = ("1970-01-01 00:00:00", "2149-06-06 23:59:59")
WIDE_RANGE = ("1900-01-01 00:00:00", "2299-12-31 23:59:59")  # DateTime64 and Date32


def outside(column: str, value: str, type_name: str, span: tuple[str, str]) -> list[str]:
    return [f"column {column}: value {value} is outside the range of {type_name}, {span[0]} to {span[1]} UTC"]


def test_a_time_outside_datetime_or_not_named_in_full_is_quarantined_and_the_others_land_as_named(server):
    good = {  # as sent -> the second stored (UTC)
        "2025-05-01 10:00:00": "2025-05-01 10:00:00",
        "2026-12-01T12:00:00.123Z": "2026-12-01 12:00:00",
        "2026-12-01T12:00:00+02:00": "2026-12-01 10:00:00",
        "2025-05-01 10:00:00.5": "2025-05-01 10:00:00",
        "1970-01-01 00:00:00": "1970-01-01 00:00:00",
        "2106-02-07 06:28:15": "2106-02-07 06:28:15",
    }
    beyond = ["1900-01-01 00:00:00", "1969-12-31 23:59:59", "2106-02-07 06:28:16", "2200-01-01 00:00:00"]
    # best-effort parsing reads each of these as some other instant: this year's January 1st, the next day, ...
    invalid = [
        "0000-00-00 00:00:00",
        "12:00:00",
        "Jan 5",
        "10",
        "2025-05-01 25:00:00",
        "2025-05-01 10:60:00",
        "2025-02-30 10:00:00",
        "2025-00-01 10:00:00",
        '"2025-05-01 10:00:00"',
        "not-a-date",
    ]
    sent = [*good, *beyond, *invalid]
    rows = [event(event_id=f"dt_{n}", user_id="u_dt", timestamp=ts) for n, ts in enumerate(sent)]
    answer = server.send("events", rows)
    assert answer.json() == {"successful_rows": len(good), "quarantined_rows": len(beyond) + len(invalid)}

    stored = server.sql("SELECT event_id, timestamp FROM events WHERE startsWith(event_id, 'dt_')")
    assert {r["event_id"]: r["timestamp"] for r in stored} == {
        f"dt_{n}": good[ts] for n, ts in enumerate(sent) if ts in good
    }
    reasons = quarantined(server, "events", "event_id", "dt_")
    for n, ts in enumerate(sent):
        if ts in beyond:
            assert reasons[f"dt_{n}"] == outside("timestamp", ts, "DateTime", DATETIME_RANGE)
        elif ts in invalid:
            assert reasons[f"dt_{n}"] == [f"column timestamp: value {ts} is not a valid DateTime"]


def test_each_date_and_time_type_keeps_its_own_range(server):
    first = {"at": "1970-01-01 00:00:00", "at_ms": "1900-01-01 00:00:00.000", "day": "1970-01-01"}
    last = {"at": "2106-02-07 06:28:15", "at_ms": "2299-12-31 23:59:59.999", "day": "2149-06-06"}
    # Unix seconds, an offset, a time of day in a Date column (its UTC day), a Date32 day before 1970
    other_forms = {"at": 1746093600, "at_ms": "2025-05-01T10:00:00.250+02:00", "day": "2025-05-01 23:30:00"}
    rows = [
        {"id": "r_first", **first, "wide_day": "1900-01-01"},
        {"id": "r_last", **last, "wide_day": "2299-12-31"},
        {"id": "r_other", **other_forms, "wide_day": "1969-12-31"},
        {"id": "r_at", "at": "2300-01-01 00:00:00"},
        {"id": "r_at_ms_before", "at_ms": "1899-12-31 23:59:59"},
        {"id": "r_at_ms_after", "at_ms": "2300-01-01 00:00:00"},
        {"id": "r_day_before", "day": "1969-12-31"},
        {"id": "r_day_after", "day": "2149-06-07"},
        {"id": "r_day_zero", "day": "0000-00-00"},
        {"id": "r_day_month", "day": "2025-13-01"},
        {"id": "r_day_feb", "day": "2025-02-30"},
        {"id": "r_wide_day", "wide_day": "2300-01-01"},
    ]
    answer = server.send("moments", rows)
    assert answer.json() == {"successful_rows": 3, "quarantined_rows": len(rows) - 3}
    stored = server.sql("SELECT id, at, at_ms, day, wide_day FROM moments WHERE startsWith(id, 'r_') ORDER BY id")
    other_stored = {"at": "2025-05-01 10:00:00", "at_ms": "2025-05-01 08:00:00.250", "day": "2025-05-01"}
    assert stored == [
        {"id": "r_first", **first, "wide_day": "1900-01-01"},
        {"id": "r_last", **last, "wide_day": "2299-12-31"},
        {"id": "r_other", **other_stored, "wide_day": "1969-12-31"},
    ]
    assert quarantined(server, "moments", "id", "r_") == {
        "r_at": outside("at", "2300-01-01 00:00:00", "DateTime", DATETIME_RANGE),
        "r_at_ms_before": outside("at_ms", "1899-12-31 23:59:59", "DateTime64(3, 'UTC')", WIDE_RANGE),
        "r_at_ms_after": outside("at_ms", "2300-01-01 00:00:00", "DateTime64(3, 'UTC')", WIDE_RANGE),
        "r_day_before": outside("day", "1969-12-31", "Date", DATE_RANGE),
        "r_day_after": outside("day", "2149-06-07", "Date", DATE_RANGE),
        "r_day_zero": ["column day: value 0000-00-00 is not a valid Date"],
        "r_day_month": ["column day: value 2025-13-01 is not a valid Date"],
        "r_day_feb": ["column day: value 2025-02-30 is not a valid Date"],
        "r_wide_day": outside("wide_day", "2300-01-01", "Date32", WIDE_RANGE),
    }


def dup_event(event_id: str) -> str:
    """An events row whose user_id is given twice: ClickHouse would read u_first, Python's json u_second."""
    fields = ", ".join(f'"{c}": ""' for c in EVENT_COLUMNS if c not in ("event_id", "user_id"))
    return (
        f'{{"event_id": "{event_id}", "user_id": "u_first", {fields}, "timestamp": "2025-05-01 10:00:00", '
        '"user_id": "u_second"}'
    )


@pytest.mark.parametrize(
    ("shape", "body", "landed"),
    [
        ("alone", lambda p: dup_event(f"{p}0"), 0),
        ("pretty", lambda p: dup_event(f"{p}0").replace(", ", ",\n    "), 0),
        ("ndjson", lambda p: "\n".join([dup_event(f"{p}0"), json.dumps(event(event_id=f"{p}1"))]), 1),
        ("array", lambda p: f"[{dup_event(f'{p}0')}, {json.dumps(event(event_id=f'{p}1'))}]", 1),
    ],
)
def test_a_key_given_twice_is_quarantined_alone_in_a_batch_or_in_an_array(server, shape, body, landed):
    prefix = f"dup_{shape}_"
    answer = post(server, "events", body(prefix))
    assert answer.json() == {"successful_rows": landed, "quarantined_rows": 1}
    stored = server.sql(f"SELECT event_id FROM events WHERE startsWith(event_id, '{prefix}')")
    assert [r["event_id"] for r in stored] == [f"{prefix}1"] * landed
    assert quarantined(server, "events", "event_id", prefix) == {f"{prefix}0": ["duplicated key user_id"]}


def test_a_key_given_twice_inside_a_nested_object_or_outside_the_columns_is_quarantined(server):
    lines = [
        '{"id": "n_nested", "meta": {"source": "a", "source": "b"}}',
        '{"id": "n_parent", "meta": {"source": "a"}, "meta": {"source": "b"}}',
        '{"id": "n_middle", "meta": {"origin": {"host": "a"}, "origin": {"host": "b"}}}',
        '{"id": "n_unread", "extra": 1, "extra": 2}',
        '{"id": "n_ok", "meta": {"source": "a", "other": {"x": 1}}}',
    ]
    assert post(server, "moments", "\n".join(lines)).json() == {"successful_rows": 1, "quarantined_rows": 4}
    assert server.sql("SELECT id, source FROM moments WHERE startsWith(id, 'n_')") == [{"id": "n_ok", "source": "a"}]
    assert quarantined(server, "moments", "id", "n_") == {
        "n_nested": ["duplicated key meta.source"],
        "n_parent": ["duplicated key meta"],
        "n_middle": ["duplicated key meta.origin"],
        "n_unread": ["duplicated key extra"],
    }


def test_a_csv_file_that_starts_with_a_byte_order_mark_keeps_its_header(server):
    header = ["timestamp", "user_id", "event_id", *(c for c in EVENT_COLUMNS if c not in ("user_id", "event_id"))]
    rows = [event(event_id=f"bom_{n}", user_id=f"u_bom{n}", timestamp=f"2025-05-0{n + 1} 10:00:00") for n in range(3)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([[r[c] for c in header] for r in rows])
    answer = server.http.post(
        server.url("/v0/datasources"),
        params={"name": "events", "mode": "append", "format": "csv"},
        files={"csv": ("events.csv", out.getvalue().encode("utf-8-sig"))},  # as spreadsheet tools write it
        headers=server.auth(),
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["statistics"]["row_count"], answer.json()["quarantine_rows"]) == (3, 0)
    stored = server.sql("SELECT event_id, user_id, timestamp FROM events WHERE startsWith(event_id, 'bom_')")
    assert sorted(stored, key=lambda r: r["event_id"]) == [
        {"event_id": r["event_id"], "user_id": r["user_id"], "timestamp": r["timestamp"]} for r in rows
    ]

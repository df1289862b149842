"""The Events API's ingest pipeline over HTTP (local/ingest.py): the same body gives the same rows and the same
quarantine every time it is sent, whether its batch is the first one parsed with the datasource's stage query (whose
table takes its columns from that query) or a later one (whose table is made from the columns the first gave)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ServerProcess, count, event, slice_project

pytestmark = pytest.mark.embedded

GOOD = [event(event_id=f"ok-{n}", user_id=f"u{n % 7}", event_type="click") for n in range(50)]
BAD = [
    json.dumps(event(event_id="bad-type", timestamp="not a time")),
    '{"event_id": "cut", "user_id"',
    '{"event_id": "twice", "event_id": "again", "user_id": "u", "event_type": "e", "properties": "{}", '
    '"timestamp": "2025-05-01 10:00:00"}',
    json.dumps({k: v for k, v in event(event_id="no-user").items() if k != "user_id"}),
]


def body() -> bytes:
    """Good rows with the bad ones among them, blank lines and lines led by whitespace."""
    lines = [json.dumps(row) for row in GOOD]
    for k, bad in enumerate(BAD):
        lines.insert(5 + 10 * k, bad)
    lines[20] = "  \t" + lines[20]
    return ("\n".join(lines[:30]) + "\n\n \n" + "\n".join(lines[30:]) + "\n").encode()


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    """A server of its own (the `events` datasource, no fixtures): the session's server keeps its rows."""
    base = tmp_path_factory.mktemp("pipeline")
    server = ServerProcess(slice_project(base / "project"), base / "data")
    target = server.start()
    answers = [
        target.http.post(
            target.url("/v0/events"), params={"name": "events", "wait": "true"}, data=body(), headers=target.auth()
        )
        for _ in range(3)
    ]
    yield target, answers, server
    server.stop()


def test_every_send_lands_its_good_rows_once_and_quarantines_the_rest(sent):
    target, answers, _ = sent
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"successful_rows": len(GOOD), "quarantined_rows": len(BAD)}
    stored = target.sql("SELECT event_id, count() AS n FROM events GROUP BY event_id ORDER BY event_id")
    assert stored == sorted(({"event_id": row["event_id"], "n": 3} for row in GOOD), key=lambda r: r["event_id"])
    assert count(target, "events_quarantine") == 3 * len(BAD)


def test_each_send_quarantines_the_same_rows_with_the_same_reasons_in_their_order(sent):
    target, _, _ = sent
    imports = target.sql(
        "SELECT c__import_id, groupArray((event_id, c__error_column, c__error)) AS rows "
        "FROM events_quarantine GROUP BY c__import_id"
    )
    assert len(imports) == 3
    first = imports[0]["rows"]
    assert [row[0] for row in first] == ["bad-type", None, "twice", "no-user"]  # the order they were sent in
    assert all(i["rows"] == first for i in imports)
    assert ["timestamp"] in [row[1] for row in first] and ["user_id"] in [row[1] for row in first]


def test_batches_reach_chdb_without_pandas_and_leave_no_file_behind(sent):
    """A batch travels as an Arrow stream file (chDB's Python() table function imports pandas, 0.5 to 1 s of every
    start and 40 MB held): after NDJSON sends with quarantined rows and a CSV file whose rows are rejected before
    parsing (the other path into quarantine), the server has loaded no part of pandas and its spool dir is empty."""
    target, _, server = sent
    answer = target.http.post(
        target.url("/v0/datasources"),
        params={"name": "events", "mode": "append", "format": "csv"},
        data=b"only,two\n",  # too few fields: rejected by the CSV reader
        headers=target.auth(),
    )
    assert answer.status_code == 200, answer.text
    reasons = target.sql(f"SELECT c__error FROM events_quarantine WHERE c__import_id = '{answer.json()['import_id']}'")
    assert reasons == [{"c__error": ["CSV row 1 has 2 fields, expected 9"]}]
    maps = Path(f"/proc/{server.proc.pid}/maps")
    if maps.exists():
        assert "/pandas/" not in maps.read_text()
    assert list((server.data_dir / "spool").iterdir()) == []


def test_a_batch_that_cannot_be_staged_is_refused_whole_and_the_next_one_lands(sent):
    """The spool dir is where a batch waits for its query: when it cannot take the batch (here a file stands in its
    place; a full disk is a 507), the answer is a clear 5xx that stores nothing and names no path of the server's."""
    target, _, server = sent
    spool = server.data_dir / "spool"
    before = count(target, "events")
    spool.rmdir()
    spool.write_text("")
    try:
        refused = target.send("events", GOOD[:3])
        assert refused.status_code == 500
        assert refused.json()["error"].startswith("The request failed and stored nothing: cannot stage the batch:")
        assert str(server.data_dir) not in refused.text
        assert count(target, "events") == before
    finally:
        spool.unlink()
        spool.mkdir()
    landed = target.send("events", GOOD[:3])
    assert landed.status_code == 200, landed.text
    assert count(target, "events") == before + 3


def test_a_data_dir_whose_path_clickhouse_would_read_as_a_glob_still_ingests(tmp_path):
    """ClickHouse's file() expands `*`, `?` and `{a,b}` in a path: a data dir named with them (an operator's choice)
    stages its batches in a private temporary spool instead, and every row lands."""
    server = ServerProcess(slice_project(tmp_path / "project"), tmp_path / "data{1,2}?*")
    target = server.start()
    try:
        answer = target.send("events", GOOD[:5])
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"successful_rows": 5, "quarantined_rows": 0}
        assert count(target, "events") == 5
    finally:
        server.stop()
    assert not (tmp_path / "data{1,2}?*" / "spool").exists()

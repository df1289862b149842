"""The embedded server's own guarantees: ingest through /v0/events, quarantine, restarts, redeploys.

Every server runs on a copy of the `events` slice with no fixtures, so a test knows exactly which rows went in:
the tests that only send and read share one server, emptied (datasource and quarantine) before each of them; those
that restart, rebuild or change the project run their own.
"""

from __future__ import annotations

import gzip
import json
import subprocess

import oracle
import pytest
from conftest import ROOT, ServerProcess, Target, emptied, event, run_cli, slice_project

from usage_analytics.generator import generate

pytestmark = pytest.mark.embedded

PARAMS = [
    {},
    {"start_date": "2025-04-01 00:00:00", "end_date": "2025-04-30 23:59:59"},
    {"start_date": "2025-05-10 13:37:00"},
    {"feature": "search_bar"},
    {"feature": "no_such_feature"},
]


def split_good_and_bad(lines: list[str]) -> tuple[list[dict], list[str]]:
    good, bad = [], []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if isinstance(row, dict) and not str(row.get("event_id", "")).startswith("dirty_"):
            good.append(row)
        else:
            bad.append(line)
    return good, bad


@pytest.fixture(scope="module")
def dirty_events(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("dirty")
    generate(folder, seed=11, rows=3000, sources=["events"], dirty=0.05)
    return (folder / "events.ndjson").read_text().splitlines()


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[ServerProcess, Target]:
    root = tmp_path_factory.mktemp("shared")
    server = ServerProcess(slice_project(root / "project"), root / "data")
    yield server, server.start()
    server.stop()


@pytest.fixture
def target(shared):
    """The shared server with `events` and its quarantine emptied, as a server of its own would start."""
    return emptied(shared[1])


def test_good_rows_land_and_bad_rows_go_to_quarantine(target, dirty_events):
    good, bad = split_good_and_bad(dirty_events)
    assert good and bad
    half = len(dirty_events) // 2
    answers = [target.send("events", dirty_events[:half]), target.send("events", dirty_events[half:])]
    assert [a.status_code for a in answers] == [200, 200]
    assert sum(a.json()["successful_rows"] for a in answers) == len(good)
    assert sum(a.json()["quarantined_rows"] for a in answers) == len(bad)
    assert target.sql("SELECT count() AS n FROM events")[0]["n"] == len(good)
    quarantined = target.sql("SELECT * FROM events_quarantine")
    assert len(quarantined) == len(bad)
    assert all(row["c__error"] and row["c__import_id"] and row["insertion_date"] for row in quarantined)
    dirty_ids = {row["event_id"] for row in quarantined if row["event_id"]}
    assert dirty_ids and all(i.startswith("dirty_") for i in dirty_ids)


@pytest.mark.parametrize("params", PARAMS)
def test_feature_usage_matches_the_oracle_over_the_rows_sent(target, dirty_events, params):
    assert target.send("events", dirty_events).status_code == 200
    good, _ = split_good_and_bad(dirty_events)
    assert target.data("feature_usage", params) == oracle.expected("feature_usage", params, {"events": good})


@pytest.mark.deviation(
    "stricter", "wait=false answers after the rows are written; Tinybird's 202 means accepted and written moments later"
)
def test_wait_false_answers_202_and_gzip_bodies_are_accepted(target):
    row = event(event_id="e1", user_id="u1", feature="f")
    response = target.send("events", [row], wait=False)
    assert (response.status_code, response.json()) == (202, {"successful_rows": 1, "quarantined_rows": 0})
    body = gzip.compress(json.dumps({**row, "event_id": "e2"}).encode())
    response = target.http.post(
        target.url("/v0/events"),
        params={"name": "events", "wait": "true"},
        data=body,
        headers={**target.auth(), "Content-Encoding": "gzip"},
    )
    assert response.json() == {"successful_rows": 1, "quarantined_rows": 0}
    assert target.sql("SELECT count() AS n FROM events")[0]["n"] == 2


def without(row: dict, column: str) -> dict:
    return {k: v for k, v in row.items() if k != column}


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (event(timestamp="not-a-date"), "timestamp"),
        (without(event(), "timestamp"), "timestamp"),
        (event(timestamp=None), "timestamp"),
        (without(event(), "user_id"), "user_id"),
        (event(event_type=None), "event_type"),
    ],
)
def test_quarantine_names_the_column_and_the_reason(target, row, column):
    assert target.send("events", [event(event_id="ok"), row]).json() == {"successful_rows": 1, "quarantined_rows": 1}
    (stored,) = target.sql("SELECT c__error_column, c__error FROM events_quarantine")
    assert stored["c__error_column"] == [column]
    assert column in stored["c__error"][0]


def test_a_line_that_is_not_utf8_or_not_json_is_quarantined_and_blank_lines_are_skipped(target):
    good = [json.dumps(event(event_id=f"e{i}", user_id="u1")).encode() for i in range(3)]
    body = (
        b"\n\n"
        + good[0]
        + b"\r\n"
        + b'{"event_id": "\xff\xfe"}'
        + b"\n  \n"
        + good[1]
        + b"\nnot json\n"
        + good[2]
        + b"\n"
    )
    response = target.http.post(
        target.url("/v0/events"), params={"name": "events", "wait": "true"}, data=body, headers=target.auth()
    )
    assert response.json() == {"successful_rows": 3, "quarantined_rows": 2}
    assert [r["event_id"] for r in target.sql("SELECT event_id FROM events ORDER BY event_id")] == ["e0", "e1", "e2"]
    errors = {r["c__error"][0] for r in target.sql("SELECT c__error FROM events_quarantine")}
    # each line as sent, without its newline; bytes that are not UTF-8 shown as U+FFFD
    assert "invalid JSON object: not json" in errors and len(errors) == 2
    (not_utf8,) = errors - {"invalid JSON object: not json"}
    assert not_utf8.startswith('invalid JSON object: {"event_id": "\ufffd')


def test_unknown_datasource_and_oversized_bodies_are_refused(target):
    assert target.send("nope", ["{}"]).status_code == 404
    huge = ['{"event_id": "' + "x" * 1024 * 1024 + '"}'] * 11
    response = target.send("events", huge)
    assert response.status_code == 413 and "10 MB" in response.json()["error"]


def test_data_survives_a_restart(tmp_path, start_server, dirty_events):
    server, target = start_server(slice_project(tmp_path / "project"))
    target.send("events", dirty_events)
    before = target.data("feature_usage")
    assert server.stop() == 0
    target = server.start()
    assert target.data("feature_usage") == before


def test_a_second_server_on_the_same_data_dir_is_refused(shared):
    server = shared[0]
    second = ServerProcess(server.project_dir, server.data_dir)
    with pytest.raises(RuntimeError, match="in use by another server"):
        second.start(timeout=30)


def build(target) -> subprocess.CompletedProcess:
    return run_cli(target, "build")


@pytest.mark.deviation(
    "stricter",
    "a change that would lose rows is refused; Tinybird Forward migrates such a datasource with a FORWARD_QUERY",
)
def test_build_applies_changes_without_a_restart_and_refuses_to_lose_data(tmp_path, start_server):
    project = slice_project(tmp_path / "project")
    _, target = start_server(project)
    target.send("events", [event(event_id="e1", feature="f")])
    datasource = project / "datasources/events.datasource"
    original = datasource.read_text()

    timestamp = "`timestamp` DateTime `json:$.timestamp`"
    datasource.write_text(original.replace(timestamp, "`timestamp` Date `json:$.timestamp`"))
    refused = build(target)
    assert refused.returncode != 0
    assert "events" in refused.stderr and "1 rows" in refused.stderr
    assert target.data("feature_usage") == [{"feature": "f", "usage_count": 1, "unique_users": 1}]

    added = "`timestamp` DateTime `json:$.timestamp`,\n    `plan` String `json:$.plan` DEFAULT 'free'"
    datasource.write_text(original.replace(timestamp, added))
    applied = build(target)
    assert applied.returncode == 0, applied.stderr
    assert "datasource events: extend" in applied.stdout
    target.send("events", [event(event_id="e2", feature="f", timestamp="2025-05-01 11:00:00", plan="pro")])
    assert target.sql("SELECT event_id, plan FROM events ORDER BY event_id") == [
        {"event_id": "e1", "plan": "free"},
        {"event_id": "e2", "plan": "pro"},
    ]

    # a changed DEFAULT keeps the rows: it applies to rows sent from then on
    datasource.write_text(original.replace(timestamp, added.replace("'free'", "'trial'")))
    changed = build(target)
    assert changed.returncode == 0 and "datasource events: extend" in changed.stdout, changed.stderr
    target.send("events", [{k: v for k, v in event(event_id="e3", feature="f").items() if k != "plan"}])
    plans = target.sql("SELECT event_id, plan FROM events ORDER BY event_id")
    assert [p["plan"] for p in plans] == ["free", "pro", "trial"]


def test_build_adds_and_drops_a_skipping_index_on_a_datasource_with_rows(tmp_path, start_server):
    project = slice_project(tmp_path / "project")
    _, target = start_server(project)
    target.send("events", [event(event_id="e1", feature="f", user_id="u1")])
    datasource = project / "datasources/events.datasource"
    original = datasource.read_text()
    indexes = "system.data_skipping_indices WHERE database = 'tb' AND table = 'events'"

    datasource.write_text(original + "\nINDEXES >\n    user_bloom user_id TYPE bloom_filter GRANULARITY 1\n")
    applied = build(target)
    assert applied.returncode == 0, applied.stderr
    assert target.sql(f"SELECT name, type, expr FROM {indexes}") == [
        {"name": "user_bloom", "type": "bloom_filter", "expr": "user_id"}
    ]
    assert target.sql("SELECT event_id FROM events WHERE user_id = 'u1'") == [{"event_id": "e1"}]

    datasource.write_text(original)
    assert build(target).returncode == 0
    assert target.sql(f"SELECT name FROM {indexes}") == []
    assert target.data("feature_usage") == [{"feature": "f", "usage_count": 1, "unique_users": 1}]


def test_a_rollup_whose_schema_changes_is_rebuilt_from_its_sources(tmp_path, start_server):
    """A materialization's target holds derived rows: a new state type (t-digest to timing quantiles, as this
    project changed) recreates it and backfills it from the raw rows instead of refusing the build."""
    import shutil

    project = tmp_path / "project"
    for folder in ("datasources", "pipes", "endpoints", "fixtures"):
        shutil.copytree(ROOT / folder, project / folder)
    changed = [
        project / "datasources/api_logs_daily_endpoints_mv.datasource",
        project / "pipes/api_logs_daily_endpoints.pipe",
        project / "endpoints/endpoint_performance.pipe",
        project / "endpoints/time_series_metrics.pipe",
    ]
    current = {path: path.read_text() for path in changed}
    for path, text in current.items():
        path.write_text(text.replace("quantilesTiming", "quantilesTDigest"))
    _, target = start_server(project)
    window = {"start_date": "2025-05-01 00:00:00", "end_date": "2025-05-31 23:59:59", "limit": "3"}
    before = target.data("endpoint_performance", window)
    for path, text in current.items():
        path.write_text(text)
    applied = build(target)
    assert applied.returncode == 0, applied.stderr
    assert "datasource api_logs_daily_endpoints_mv: recreate" in applied.stdout
    after = target.data("endpoint_performance", window)
    assert [(r["endpoint"], r["request_count"]) for r in after] == [(r["endpoint"], r["request_count"]) for r in before]
    rows = target.sql("SELECT sum(requests) AS n FROM api_logs_daily_endpoints_mv")
    assert rows == target.sql("SELECT count() AS n FROM api_logs")

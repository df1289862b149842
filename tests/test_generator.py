"""The fixture generator: seeded and byte-stable, schema-true, realistic where the endpoints need it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta

import pytest
from conftest import ROOT

from usage_analytics.generator import BASE_DATE, SOURCES, generate
from usage_analytics.local import load_project

PROJECT = load_project(ROOT)
START = BASE_DATE - timedelta(weeks=13)


def lines(path) -> list[str]:
    return path.read_text().splitlines()


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path):
    generate(tmp_path / "a", seed=3, rows=500)
    generate(tmp_path / "b", seed=3, rows=500)
    generate(tmp_path / "c", seed=4, rows=500)
    for source in SOURCES:
        assert (tmp_path / "a" / f"{source}.ndjson").read_bytes() == (tmp_path / "b" / f"{source}.ndjson").read_bytes()
    assert (tmp_path / "a/events.ndjson").read_bytes() != (tmp_path / "c/events.ndjson").read_bytes()


def test_committed_fixtures_are_the_generators_output(tmp_path):
    generate(tmp_path)
    for source in SOURCES:
        assert (ROOT / "fixtures" / f"{source}.ndjson").read_bytes() == (tmp_path / f"{source}.ndjson").read_bytes()


def test_every_datasource_that_takes_events_has_a_fixture():
    sources = {name for name in PROJECT.datasources if not name.endswith("_mv")}
    assert sources == set(SOURCES)
    assert all(PROJECT.fixture_for(name) for name in sources)


@pytest.mark.parametrize("source", SOURCES)
def test_fixture_rows_match_their_schema(source):
    columns = PROJECT.datasources[source].columns
    for line in lines(ROOT / "fixtures" / f"{source}.ndjson"):
        row = json.loads(line)
        assert list(row) == [c.name for c in columns]
        for column in columns:
            value = row[column.name]
            if column.type.startswith(("UInt", "Int")):
                assert isinstance(value, int) and value >= 0
            else:
                assert isinstance(value, str)
            if column.type == "DateTime" and source != "tenant_rate_limits":
                assert START <= datetime.strptime(value, "%Y-%m-%d %H:%M:%S") < BASE_DATE


def test_rows_option_sizes_every_event_source(tmp_path):
    stats = generate(tmp_path, rows=321)
    assert {s: stats[s]["rows"] for s in SOURCES if s != "tenant_rate_limits"} == dict.fromkeys(SOURCES[:4], 321)


def test_dirty_rows_are_the_asked_share_and_each_is_invalid(tmp_path):
    stats = generate(tmp_path, rows=4000, sources=["api_logs"], dirty=0.1)
    assert 300 < stats["api_logs"]["dirty"] < 500
    dirty = 0
    for line in lines(tmp_path / "api_logs.ndjson"):
        try:
            row = json.loads(line)
        except ValueError:
            dirty += 1
            continue
        if row["request_id"].startswith("dirty_"):
            dirty += 1
            broken = (
                "timestamp" not in row
                or row["timestamp"] is None
                or not isinstance(row["status_code"], int)
                or not row["timestamp"][:4].isdigit()
                or row["timestamp"][5:7] > "12"
            )
            assert broken, row
    assert dirty == stats["api_logs"]["dirty"]


def test_the_shapes_the_endpoints_need_are_there():
    rows = {s: [json.loads(line) for line in lines(ROOT / "fixtures" / f"{s}.ndjson")] for s in SOURCES}
    tenants = Counter(r["tenant_id"] for r in rows["api_logs"])
    assert tenants.most_common(1)[0][1] > 4 * min(tenants.values())  # a few heavy tenants
    assert any(r["status_code"] < 400 and r["error_type"] for r in rows["api_logs"])  # warnings are not errors
    assert sum(r["status_code"] >= 500 for r in rows["api_logs"]) > 20
    assert sum(r["feature"] == "" for r in rows["events"]) > 500  # endpoints skip empty features
    weeks_per_user = Counter()
    for user, stamps in _by_user(rows["events"]).items():
        weeks_per_user[user] = len({datetime.strptime(t, "%Y-%m-%d %H:%M:%S").isocalendar()[1] for t in stamps})
    assert sum(1 for w in weeks_per_user.values() if w >= 3) > 20  # users come back: retention means something
    updated = Counter((r["tenant_id"], r["endpoint"]) for r in rows["tenant_rate_limits"])
    assert sum(1 for n in updated.values() if n > 1) >= 10  # limits that get replaced


def _by_user(events: list[dict]) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    for r in events:
        users.setdefault(r["user_id"], []).append(r["timestamp"])
    return users


def test_the_rate_limit_burst_exceeds_its_limits_at_noon():
    rows = [json.loads(line) for line in lines(ROOT / "fixtures/api_logs.ndjson")]
    limits = {}
    for r in (json.loads(line) for line in lines(ROOT / "fixtures/tenant_rate_limits.ndjson")):
        key = (r["tenant_id"], r["endpoint"])
        if key not in limits or r["updated_at"] >= limits[key]["updated_at"]:
            limits[key] = r
    at = datetime(2025, 6, 1, 12)
    last_minute = Counter(
        (r["tenant_id"], r["endpoint"])
        for r in rows
        if at - timedelta(minutes=1) < datetime.strptime(r["timestamp"], "%Y-%m-%d %H:%M:%S") <= at
    )
    limited = [pair for pair, n in last_minute.items() if pair in limits and n >= limits[pair]["requests_per_minute"]]
    assert limited == [("tenant_acme", "/api/v1/search")]

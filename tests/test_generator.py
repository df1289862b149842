"""The fixture generator: seeded and byte-stable, schema-true, realistic where the endpoints need it."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import pytest
from conftest import ROOT

from usage_analytics.generator import BASE_DATE, SOURCES, generate
from usage_analytics.local import load_project

PROJECT = load_project(ROOT)
START = BASE_DATE - timedelta(weeks=13)
EVENT_SOURCES = SOURCES[:4]
ID_COLUMN = {"api_logs": "request_id", "tenant_rate_limits": "tenant_id"}
FORMAT = "%Y-%m-%d %H:%M:%S"


def lines(path) -> list[str]:
    return path.read_text().splitlines()


def fixture(source: str) -> list[dict]:
    return [json.loads(line) for line in lines(ROOT / "fixtures" / f"{source}.ndjson")]


def parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, FORMAT)


def fits_schema(source: str, row: dict) -> bool:
    """What the server accepts: every column present, not null, of its type (no column has a DEFAULT)."""
    for column in PROJECT.datasources[source].columns:
        value = row.get(column.name)
        if value is None:
            return False
        if column.type.startswith(("UInt", "Int")):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                return False
        elif not isinstance(value, str):
            return False
        elif column.type == "DateTime":
            try:
                parse(value)
            except ValueError:
                return False
    return True


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path):
    generate(tmp_path / "a", seed=3, rows=500)
    generate(tmp_path / "b", seed=3, rows=500)
    generate(tmp_path / "c", seed=4, rows=500)
    for source in SOURCES:
        same = (tmp_path / "a" / f"{source}.ndjson").read_bytes()
        assert same == (tmp_path / "b" / f"{source}.ndjson").read_bytes()
        assert same != (tmp_path / "c" / f"{source}.ndjson").read_bytes()


def test_one_source_alone_is_the_same_as_in_a_full_run(tmp_path):
    generate(tmp_path / "all", rows=300)
    generate(tmp_path / "one", rows=300, sources=["app_events"])
    assert (tmp_path / "one/app_events.ndjson").read_bytes() == (tmp_path / "all/app_events.ndjson").read_bytes()
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["app_events.ndjson"]


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
    names = [c.name for c in PROJECT.datasources[source].columns]
    for row in fixture(source):
        assert list(row) == names
        assert fits_schema(source, row), row
        if source != "tenant_rate_limits":
            assert START <= parse(row["timestamp"]) < BASE_DATE
    assert (ROOT / "fixtures" / f"{source}.ndjson").read_text().endswith("}\n")


def test_rows_option_sizes_every_event_source_but_not_the_configuration(tmp_path):
    stats = generate(tmp_path, rows=321)
    assert {s: stats[s]["rows"] for s in EVENT_SOURCES} == dict.fromkeys(EVENT_SOURCES, 321)
    assert stats["tenant_rate_limits"]["rows"] == len(fixture("tenant_rate_limits"))
    assert [len(lines(tmp_path / f"{s}.ndjson")) for s in SOURCES] == [stats[s]["rows"] for s in SOURCES]


def test_dirty_rows_are_the_asked_share_each_is_invalid_and_the_rest_untouched(tmp_path):
    generate(tmp_path / "clean", rows=2000)
    stats = generate(tmp_path / "dirty", rows=2000, dirty=0.1)
    total = sum(s["rows"] for s in stats.values())
    assert 0.08 * total < sum(s["dirty"] for s in stats.values()) < 0.12 * total
    kinds = Counter()
    for source in SOURCES:
        clean = lines(tmp_path / "clean" / f"{source}.ndjson")
        dirty = lines(tmp_path / "dirty" / f"{source}.ndjson")
        assert len(dirty) == len(clean) == stats[source]["rows"]
        spoiled = 0
        for before, after in zip(clean, dirty, strict=True):
            if before == after:
                continue
            spoiled += 1
            try:
                row = json.loads(after)
            except ValueError:
                kinds["not JSON"] += 1
                continue
            if not isinstance(row, dict):
                assert any(str(value).startswith("dirty_") for value in row)
                kinds["not an object"] += 1
                continue
            assert row[ID_COLUMN.get(source, "event_id")].startswith("dirty_")
            assert not fits_schema(source, row), row
            kinds["invalid value"] += 1
        assert spoiled == stats[source]["dirty"]
    assert min(kinds.values()) > 10 and len(kinds) == 3


def test_rates_and_percentiles_have_the_shapes_the_endpoints_need():
    logs = fixture("api_logs")
    tenants = Counter(r["tenant_id"] for r in logs)
    assert len(tenants) == 8 and tenants.most_common(1)[0][1] > 4 * min(tenants.values())  # heavy tenants
    assert Counter(r["method"] for r in logs).most_common(1)[0][0] == "GET"
    assert any(r["status_code"] < 300 and r["error_type"] for r in logs)  # warnings: not errors
    errors = [r for r in logs if r["status_code"] >= 400]
    assert sum(r["error_type"] != "" for r in errors) > 0.9 * len(errors)
    combos = {(r["error_type"], r["error_message"]): r["status_code"] for r in errors if r["error_type"]}
    assert len(combos) >= 6 and any(code >= 500 for code in combos.values())
    assert any(":" in r["ip_address"] for r in logs) and any("." in r["ip_address"] for r in logs)
    assert len({r["region"] for r in logs}) == 6
    tenants_of = defaultdict(set)
    for r in logs:
        tenants_of[r["user_id"]].add(r["tenant_id"])
    assert any(len(t) > 1 for t in tenants_of.values())  # one user, two tenants
    # an incident: some endpoint-hour has several times the usual share of 5xx
    per_hour = Counter((r["endpoint"], r["timestamp"][:13]) for r in logs)
    failed = Counter((r["endpoint"], r["timestamp"][:13]) for r in logs if r["status_code"] >= 500)
    assert any(n >= 3 and n / per_hour[key] > 0.3 for key, n in failed.items())
    assert [r["timestamp"] for r in logs] == sorted(r["timestamp"] for r in logs)


def test_product_sources_have_sessions_seasons_and_returning_users():
    events, features, app = fixture("events"), fixture("feature_events"), fixture("app_events")
    assert 0.15 < sum(r["feature"] == "" for r in events) / len(events) < 0.25  # endpoints skip ''
    assert len(events) / len({r["session_id"] for r in events}) > 3  # sessions of many events
    weekdays = Counter(parse(r["timestamp"]).weekday() for r in events)
    assert min(weekdays[d] for d in range(5)) > 1.5 * max(weekdays[5], weekdays[6])
    hours = Counter(parse(r["timestamp"]).hour for r in events)
    assert sum(hours[h] for h in range(9, 17)) > 3 * sum(hours[h] for h in range(0, 8))
    # weekly cohorts: users start in every week and a fading share of them comes back
    weeks = defaultdict(set)
    for r in events:
        weeks[r["user_id"]].add((parse(r["timestamp"]) - START).days // 7)
    cohorts = Counter(min(w) for w in weeks.values())
    assert set(cohorts) == set(range(13))
    returned = [sum(1 for w in weeks.values() if min(w) < 8 and min(w) + k in w) for k in range(6)]
    assert returned[0] > returned[1] > returned[5] > 0
    first_seen = {}
    for r in sorted(features, key=lambda r: r["timestamp"]):
        first_seen.setdefault(r["product_version"], r["timestamp"])
    versions = sorted(first_seen, key=lambda v: tuple(map(int, v.split("."))))
    assert len(versions) == 6 and [first_seen[v] for v in versions[1:]] == sorted(first_seen[v] for v in versions[1:])
    sessions = defaultdict(list)
    for r in app:
        sessions[r["session_id"]].append(r)
    durations = [
        (parse(max(r["timestamp"] for r in s)) - parse(min(r["timestamp"] for r in s))) for s in sessions.values()
    ]
    assert 0.05 < sum(d.total_seconds() == 0 for d in durations) / len(durations) < 0.25
    for rows in sessions.values():
        assert len({(r["user_id"], r["device_type"], r["browser"], r["os"], r["location"]) for r in rows}) == 1


def _latest_limits(rows: list[dict]) -> dict[tuple[str, str], dict]:
    latest = {}
    for r in rows:
        key = (r["tenant_id"], r["endpoint"])
        if key not in latest or r["updated_at"] > latest[key]["updated_at"]:
            latest[key] = r
    return latest


def _usage_pct(logs: list[dict], limits: dict, at: datetime) -> dict[tuple[str, str], tuple[float, float, float]]:
    counts = defaultdict(lambda: [0, 0, 0])
    for r in logs:
        ago = at - parse(r["timestamp"])
        for i, window in enumerate((timedelta(minutes=1), timedelta(hours=1), timedelta(days=1))):
            if timedelta(0) <= ago < window:
                counts[(r["tenant_id"], r["endpoint"])][i] += 1
    columns = ("requests_per_minute", "requests_per_hour", "requests_per_day")
    return {
        pair: tuple(100 * n / limit[c] for n, c in zip(counts[pair], columns, strict=True))
        for pair, limit in limits.items()
    }


def test_the_rate_limit_burst_exceeds_its_latest_limits_at_noon():
    logs, limit_rows = fixture("api_logs"), fixture("tenant_rate_limits")
    at = datetime(2025, 6, 1, 12)
    usage = _usage_pct(logs, _latest_limits(limit_rows), at)
    limited = [pair for pair, pcts in usage.items() if max(pcts) >= 100]
    assert limited == [("tenant_acme", "/api/v1/search")]
    minute, hour, _ = usage[limited[0]]
    assert minute >= 100 and hour >= 100
    assert all(max(pcts) < 50 for pair, pcts in usage.items() if pair not in limited)  # the others: well below
    # the first limits of that pair were generous: only the latest-updated_at rule flags it
    first = {}
    for r in sorted(limit_rows, key=lambda r: r["updated_at"], reverse=True):
        first[(r["tenant_id"], r["endpoint"])] = r
    assert max(_usage_pct(logs, {limited[0]: first[limited[0]]}, at)[limited[0]]) < 100


def test_rate_limits_are_configuration_with_later_updates():
    rows = fixture("tenant_rate_limits")
    pairs = Counter((r["tenant_id"], r["endpoint"]) for r in rows)
    assert 30 <= len(pairs) <= 60 and sum(n == 2 for n in pairs.values()) >= 10 and max(pairs.values()) == 2
    assert pairs.keys() < {(r["tenant_id"], r["endpoint"]) for r in fixture("api_logs")}  # some pairs: no limit
    first_request = min(r["timestamp"] for r in fixture("api_logs"))
    by_pair = defaultdict(list)
    for r in rows:
        assert r["requests_per_minute"] < r["requests_per_hour"] < r["requests_per_day"]
        assert r["created_at"] < first_request and r["updated_at"] >= r["created_at"]
        by_pair[(r["tenant_id"], r["endpoint"])].append(r)
    for versions in (v for v in by_pair.values() if len(v) == 2):
        old, new = sorted(versions, key=lambda r: r["updated_at"])
        assert old["updated_at"] < new["updated_at"] and old["created_at"] == new["created_at"]
        assert old["requests_per_minute"] != new["requests_per_minute"]
    # some replacements come before the row they replace: readers must go by updated_at
    position = {id(r): i for i, r in enumerate(rows)}
    assert any(
        position[id(max(v, key=lambda r: r["updated_at"]))] < position[id(min(v, key=lambda r: r["updated_at"]))]
        for v in by_pair.values()
        if len(v) == 2
    )

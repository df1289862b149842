"""The oracle itself, on tiny hand-written row sets whose answers were worked out by hand from ENDPOINTS.md.

Every expected value here is a literal: if the oracle drifts from the contract, these fail.
"""

from __future__ import annotations

import re

import pytest
from conftest import ROOT
from oracle import ENDPOINTS, Between, InvalidParam, expected

DAY = "2025-05-01"


def event(ts, user="u1", feature="f", event_type="click", session="s1"):
    return {
        **{"event_id": "e", "user_id": user, "session_id": session, "event_type": event_type},
        **{"event_name": "n", "page": "/", "feature": feature, "properties": "{}", "timestamp": ts},
    }


def feature_event(ts, user="u1", feature_id="f1", version="1.0", session="s1"):
    return {
        **{"event_id": "e", "user_id": user, "feature_id": feature_id, "product_version": version},
        **{"event_type": "view", "timestamp": ts, "session_id": session, "metadata": "{}"},
    }


def app_event(ts, user="u1", session="s1", feature="f", device="desktop"):
    return {
        **{"event_id": "e", "user_id": user, "session_id": session, "event_type": "click", "feature": feature},
        **{"timestamp": ts, "device_type": device, "browser": "Chrome", "os": "Linux", "location": "US"},
        "metadata": "{}",
    }


def log(ts=f"{DAY} 10:00:00", tenant="t1", user="u1", endpoint="/a", method="GET", status=200, ms=100, **kw):
    row = {"timestamp": ts, "request_id": "r", "tenant_id": tenant, "user_id": user, "endpoint": endpoint}
    row |= {"method": method, "status_code": status, "response_time_ms": ms, "request_size_bytes": 1}
    row |= {"response_size_bytes": 10, "ip_address": "10.0.0.1", "user_agent": "ua", "error_type": ""}
    return row | {"error_message": "", "region": "eu"} | kw


def limits(tenant, endpoint, rpm, rph, rpd, updated="2025-01-01 00:00:00"):
    return {
        **{"tenant_id": tenant, "endpoint": endpoint, "requests_per_minute": rpm, "requests_per_hour": rph},
        **{"requests_per_day": rpd, "created_at": "2025-01-01 00:00:00", "updated_at": updated},
    }


def values(endpoint: str, params: dict, **rows) -> list[tuple]:
    """The oracle's rows as tuples, after checking every row has the contract's columns in order."""
    out = expected(endpoint, params, rows)
    assert all(tuple(row) == ENDPOINTS[endpoint] for row in out)
    return [tuple(row.values()) for row in out]


def test_columns_are_the_contract_tables():
    text = (ROOT / "docs/ENDPOINTS.md").read_text()
    tables = re.findall(r"^\| `(\w+)` \|[^|]*\|([^|]*)\|", text, flags=re.MULTILINE)
    assert {name: tuple(re.findall(r"`(\w+)`", cols)) for name, cols in tables} == ENDPOINTS
    assert len(ENDPOINTS) == 18


# ---- events


FEATURE_ROWS = [
    event(f"{DAY} 00:00:00", "u1", "b"),
    event(f"{DAY} 12:00:00", "u2", "a"),
    event(f"{DAY} 23:59:59", "u1", "b"),
    event("2025-05-02 00:00:00", "u3", "a"),
    event("2025-04-30 23:59:59", "u3", "c"),
    event(f"{DAY} 10:00:00", "u3", ""),
]


def test_feature_usage_bounds_are_inclusive_and_empty_features_skipped():
    params = {"start_date": f"{DAY} 00:00:00", "end_date": f"{DAY} 23:59:59"}
    assert values("feature_usage", params, events=FEATURE_ROWS) == [("b", 2, 1), ("a", 1, 1)]


def test_feature_usage_ties_break_on_feature_and_a_passed_empty_feature_is_a_value():
    assert values("feature_usage", {}, events=FEATURE_ROWS) == [("a", 2, 2), ("b", 2, 1), ("c", 1, 1)]
    assert values("feature_usage", {"feature": ""}, events=FEATURE_ROWS) == [("", 1, 1)]
    assert values("feature_usage", {"feature": "a", "unknown": "x"}, events=FEATURE_ROWS) == [("a", 2, 2)]


def test_daily_active_users_window_is_open_below_and_closed_above():
    rows = [
        event("2025-05-08 12:00:00", "u9"),
        event("2025-05-08 12:00:01", "u1"),
        event("2025-05-09 01:00:00", "u1"),
        event("2025-05-09 02:00:00", "u2"),
        event("2025-05-09 03:00:00", "u1"),
        event("2025-05-10 12:00:00", "u3"),
        event("2025-05-10 12:00:01", "u9"),
    ]
    params = {"end_date": "2025-05-10 12:00:00", "days": "2"}
    assert values("daily_active_users", params, events=rows) == [
        ("2025-05-10", 1),
        ("2025-05-09", 2),
        ("2025-05-08", 1),
    ]
    assert values("daily_active_users", {"end_date": "2025-05-10 12:00:00"}, events=rows)[-1] == ("2025-05-08", 2)


def test_user_event_activity_counts_one_user_in_the_window():
    rows = [
        event("2025-05-03 00:00:00", event_type="view"),
        event("2025-05-04 10:00:00", event_type="view"),
        event("2025-05-09 08:00:00", event_type="view"),
        event("2025-05-05 00:00:00", event_type="click"),
        event("2025-05-10 00:00:00", event_type="buy"),
        event("2025-05-10 00:00:01", event_type="zoom"),
        event("2025-05-06 00:00:00", user="u2", event_type="view"),
    ]
    params = {"user_id": "u1", "end_date": "2025-05-10 00:00:00"}
    assert values("user_event_activity", params, events=rows) == [
        ("view", 2, "2025-05-09 08:00:00"),
        ("buy", 1, "2025-05-10 00:00:00"),
        ("click", 1, "2025-05-05 00:00:00"),
    ]
    one_day = values("user_event_activity", {**params, "days": "1"}, events=rows)
    assert one_day == [("buy", 1, "2025-05-10 00:00:00"), ("view", 1, "2025-05-09 08:00:00")]


RETENTION_ROWS = [
    event("2025-05-04 09:00:00", "u1"),  # a Sunday: week of Monday 2025-04-28
    event("2025-05-06 09:00:00", "u1"),
    event("2025-05-13 09:00:00", "u1"),
    event("2025-05-27 09:00:00", "u1"),
    event("2025-05-11 23:59:59", "u2"),  # Sunday: still the week of 2025-05-05
    event("2025-05-12 00:00:00", "u2"),  # Monday: the next week
    event("2025-05-14 09:00:00", "u3"),
    event("2025-05-20 09:00:00", "u3"),
]


def test_retention_cohorts_use_the_first_event_inside_the_window_and_monday_weeks():
    params = {"start_date": "2025-05-05 00:00:00", "end_date": "2025-05-31 23:59:59"}
    assert values("retention_cohorts", params, events=RETENTION_ROWS) == [
        ("2025-05-05", 0, 2, 2, 1.0),
        ("2025-05-05", 1, 2, 2, 1.0),
        ("2025-05-05", 3, 2, 1, 0.5),
        ("2025-05-12", 0, 1, 1, 1.0),
        ("2025-05-12", 1, 1, 1, 1.0),
    ]
    kept = values("retention_cohorts", {**params, "weeks": "3"}, events=RETENTION_ROWS)
    assert [row[:2] for row in kept] == [("2025-05-05", 0), ("2025-05-05", 1), ("2025-05-12", 0), ("2025-05-12", 1)]


def test_retention_cohorts_without_a_window_and_rates_to_four_places():
    assert values("retention_cohorts", {}, events=RETENTION_ROWS)[:5] == [
        ("2025-04-28", 0, 1, 1, 1.0),
        ("2025-04-28", 1, 1, 1, 1.0),
        ("2025-04-28", 2, 1, 1, 1.0),
        ("2025-04-28", 4, 1, 1, 1.0),
        ("2025-05-05", 0, 1, 1, 1.0),
    ]
    rows = [event("2025-05-05 00:00:00", u) for u in ("a", "b", "c")] + [event("2025-05-19 00:00:00", "b")]
    assert values("retention_cohorts", {}, events=rows) == [
        ("2025-05-05", 0, 3, 3, 1.0),
        ("2025-05-05", 2, 3, 1, 0.3333),
    ]


# ---- feature_events


def test_user_feature_usage_needs_a_user_and_groups_by_feature_and_version():
    rows = [
        feature_event(f"{DAY} 10:00:00", feature_id="f2"),
        feature_event("2025-05-02 10:00:00", version="2.0"),
        feature_event("2025-05-03 10:00:00"),
        feature_event("2025-05-04 10:00:00", feature_id="f2"),
        feature_event("2025-05-05 10:00:00", user="u2"),
    ]
    assert values("user_feature_usage", {}, feature_events=rows) == []
    assert values("user_feature_usage", {"user_id": "u1"}, feature_events=rows) == [
        ("u1", "f2", "1.0", 2, f"{DAY} 10:00:00", "2025-05-04 10:00:00"),
        ("u1", "f1", "1.0", 1, "2025-05-03 10:00:00", "2025-05-03 10:00:00"),
        ("u1", "f1", "2.0", 1, "2025-05-02 10:00:00", "2025-05-02 10:00:00"),
    ]
    assert len(values("user_feature_usage", {"user_id": "u1", "feature_id": "f1"}, feature_events=rows)) == 2
    one_version = values("user_feature_usage", {"user_id": "u1", "product_version": "2.0"}, feature_events=rows)
    assert [row[:4] for row in one_version] == [("u1", "f1", "2.0", 1)]


def test_feature_usage_summary_counts_users_and_sessions_and_limits():
    rows = [
        feature_event(f"{DAY} 00:00:00", "u1", session="s1"),
        feature_event("2025-05-02 00:00:00", "u2", session="s2"),
        feature_event("2025-05-03 00:00:00", "u1", session="s3"),
        feature_event("2025-05-04 00:00:00", "u1", "f2", session="s1"),
        feature_event("2025-05-05 00:00:00", "u3", version="2.0", session="s4"),
        feature_event("2025-05-06 00:00:00", "u3", "f0", "9.9", session="s4"),
    ]
    summary = values("feature_usage_summary", {}, feature_events=rows)
    assert summary[0] == ("f1", "1.0", 3, 2, 3, f"{DAY} 00:00:00", "2025-05-03 00:00:00")
    assert [row[:3] for row in summary[1:]] == [("f0", "9.9", 1), ("f1", "2.0", 1), ("f2", "1.0", 1)]
    assert [row[:2] for row in values("feature_usage_summary", {"limit": "2"}, feature_events=rows)] == [
        ("f1", "1.0"),
        ("f0", "9.9"),
    ]
    params = {"product_version": "1.0", "start_date": "2025-05-02"}  # a date alone is its midnight
    assert values("feature_usage_summary", params, feature_events=rows) == [
        ("f1", "1.0", 2, 2, 2, "2025-05-02 00:00:00", "2025-05-03 00:00:00"),
        ("f2", "1.0", 1, 1, 1, "2025-05-04 00:00:00", "2025-05-04 00:00:00"),
    ]


TIMELINE_ROWS = [
    feature_event("2025-05-11 23:59:59", "u1"),
    feature_event("2025-05-12 00:00:00", "u2"),
    feature_event("2025-05-12 00:30:00", "u2"),
    feature_event("2025-05-12 00:30:00", "u3", "f0"),
    feature_event("2025-04-30 12:00:00", "u1"),
]


@pytest.mark.parametrize(
    ("granularity", "periods"),
    [
        ("week", ["2025-04-28 00:00:00", "2025-05-05 00:00:00", "2025-05-12 00:00:00", "2025-05-12 00:00:00"]),
        ("hour", ["2025-04-30 12:00:00", "2025-05-11 23:00:00", "2025-05-12 00:00:00", "2025-05-12 00:00:00"]),
        (None, ["2025-04-30 00:00:00", "2025-05-11 00:00:00", "2025-05-12 00:00:00", "2025-05-12 00:00:00"]),
    ],
)
def test_feature_usage_timeline_buckets(granularity, periods):
    params = {"granularity": granularity} if granularity else {}
    counts = [("f1", 1, 1), ("f1", 1, 1), ("f0", 1, 1), ("f1", 2, 1)]
    expected_rows = [(period, *count) for period, count in zip(periods, counts, strict=True)]
    assert values("feature_usage_timeline", params, feature_events=TIMELINE_ROWS) == expected_rows


def test_feature_usage_timeline_months_start_on_the_first():
    assert values("feature_usage_timeline", {"granularity": "month"}, feature_events=TIMELINE_ROWS) == [
        ("2025-04-01 00:00:00", "f1", 1, 1),
        ("2025-05-01 00:00:00", "f0", 1, 1),
        ("2025-05-01 00:00:00", "f1", 3, 2),
    ]


# ---- app_events

SESSION_ROWS = [  # sent in an order that the tie-breakers must undo
    app_event(f"{DAY} 10:00:00", "u2", "s2"),
    app_event(f"{DAY} 10:00:10", "u2", "s2"),
    app_event(f"{DAY} 10:00:00", device="mobile"),
    app_event(f"{DAY} 10:00:30", device="mobile"),
    app_event(f"{DAY} 10:00:00"),
    app_event(f"{DAY} 10:05:00"),
    app_event(f"{DAY} 11:00:00", session="s3"),  # one event: duration 0, dropped
    app_event(f"{DAY} 09:00:00", session="s4"),
    app_event(f"{DAY} 09:00:01", session="s4"),
]


def test_session_insights_groups_order_and_drop_zero_durations():
    tail = ("Chrome", "Linux", "US")
    assert values("session_insights", {}, app_events=SESSION_ROWS) == [
        ("s1", "u1", f"{DAY} 10:00:00", f"{DAY} 10:05:00", 300, 2, "desktop", *tail),
        ("s1", "u1", f"{DAY} 10:00:00", f"{DAY} 10:00:30", 30, 2, "mobile", *tail),
        ("s2", "u2", f"{DAY} 10:00:00", f"{DAY} 10:00:10", 10, 2, "desktop", *tail),
        ("s4", "u1", f"{DAY} 09:00:00", f"{DAY} 09:00:01", 1, 2, "desktop", *tail),
    ]
    assert [row[0] for row in values("session_insights", {"limit": "2"}, app_events=SESSION_ROWS)] == ["s1", "s1"]
    assert [row[0] for row in values("session_insights", {"user_id": "u2"}, app_events=SESSION_ROWS)] == ["s2"]
    cut = values("session_insights", {"end_date": f"{DAY} 10:00:00"}, app_events=SESSION_ROWS)
    assert [row[0] for row in cut] == ["s4"]


def test_app_feature_usage_filters_and_skips_empty_features():
    rows = [
        app_event(f"{DAY} 10:00:00", "u1", "s1", "a"),
        app_event(f"{DAY} 10:00:00", "u2", "s1", "a", "mobile"),
        app_event(f"{DAY} 10:00:00", "u1", "s2", "b"),
        app_event(f"{DAY} 10:00:00", "u1", "s3", "b"),
        app_event(f"{DAY} 10:00:00", "u3", "s4", ""),
        app_event(f"{DAY} 10:00:00", "u1", "s5", "c", "mobile"),
    ]
    assert values("app_feature_usage", {}, app_events=rows) == [("a", 2, 2, 1), ("b", 2, 1, 2), ("c", 1, 1, 1)]
    assert values("app_feature_usage", {"limit": "1"}, app_events=rows) == [("a", 2, 2, 1)]
    assert values("app_feature_usage", {"device_type": "desktop"}, app_events=rows) == [("b", 2, 1, 2), ("a", 1, 1, 1)]
    assert values("app_feature_usage", {"feature": ""}, app_events=rows) == [("", 1, 1, 1)]


def test_active_users_buckets_are_dates_with_monday_weeks_and_first_of_month():
    rows = [
        app_event("2024-12-31 10:00:00", "u1"),
        app_event("2025-01-01 10:00:00", "u2"),
        app_event("2025-01-05 23:59:59", "u1"),
        app_event("2025-01-06 00:00:00", "u1"),
    ]
    assert values("active_users", {"interval": "1 week"}, app_events=rows) == [("2024-12-30", 2), ("2025-01-06", 1)]
    assert values("active_users", {"interval": "1 month"}, app_events=rows) == [("2024-12-01", 1), ("2025-01-01", 2)]
    days = values("active_users", {}, app_events=rows)
    assert days == [("2024-12-31", 1), ("2025-01-01", 1), ("2025-01-05", 1), ("2025-01-06", 1)]


# ---- api_logs and tenant_rate_limits

SERIES_ROWS = [
    log(f"{DAY} 10:00:00", status=200, ms=100),
    log(f"{DAY} 10:00:59", status=404, ms=300),
    log(f"{DAY} 10:01:00", status=500, ms=50),
    log(f"{DAY} 10:59:59", status=200, ms=51),
    log(f"{DAY} 11:00:00", status=399, ms=7),
    log(f"{DAY} 10:30:00", tenant="t2", ms=1000),
]


def test_time_series_metrics_per_hour_minute_and_day():
    assert values("time_series_metrics", {}, api_logs=SERIES_ROWS) == [
        (f"{DAY} 10:00:00", 5, 2, 0.4, 300.2, Between(300, 1000), Between(300, 1000)),
        (f"{DAY} 11:00:00", 1, 0, 0.0, 7.0, Between(7, 7), Between(7, 7)),
    ]
    minutes = values("time_series_metrics", {"granularity": "minute", "tenant_id": "t1"}, api_logs=SERIES_ROWS)
    assert minutes[:2] == [
        (f"{DAY} 10:00:00", 2, 1, 0.5, 200.0, Between(100, 300), Between(100, 300)),
        (f"{DAY} 10:01:00", 1, 1, 1.0, 50.0, Between(50, 50), Between(50, 50)),
    ]
    assert [row[0] for row in minutes[2:]] == [f"{DAY} 10:59:00", f"{DAY} 11:00:00"]
    assert values("time_series_metrics", {"granularity": "day"}, api_logs=SERIES_ROWS)[0][:5] == (
        f"{DAY} 00:00:00",
        6,
        2,
        0.3333,
        251.33,
    )


AT = "2025-06-01 12:00:00"
LIMIT_ROWS = [
    limits("t1", "/a", 10, 100, 1000, updated="2025-01-02 00:00:00"),
    limits("t1", "/a", 1, 1, 1, updated="2025-01-01 00:00:00"),  # sent later but older: ignored
    limits("t2", "/b", 5, 50, 500),
    limits("t2", "/b", 4, 40, 400),  # same updated_at, sent later: replaces the row above
    limits("t3", "/c", 3, 30, 300),
    limits("t4", "/a", 1, 1, 1),
    limits("t0", "/z", 1, 1, 1),
    limits("t0", "/y", 1, 1, 1),
]
LIMIT_LOGS = [
    *(log(ts, "t1", endpoint="/a") for ts in ("2025-06-01 12:00:00", "2025-06-01 11:59:01", "2025-06-01 11:59:00")),
    *(log(ts, "t1", endpoint="/a") for ts in ("2025-06-01 11:00:01", "2025-06-01 11:00:00", "2025-05-31 12:00:01")),
    *(log(ts, "t1", endpoint="/a") for ts in ("2025-05-31 12:00:00", "2025-06-01 12:00:01")),
    *(log("2025-06-01 11:59:30", "t2", endpoint="/b") for _ in range(4)),
    log("2025-06-01 11:30:00", "t3", endpoint="/c"),
    log("2025-06-01 11:59:59", "t9", endpoint="/x"),  # no configured limit: never shown
]


def test_rate_limit_usage_latest_limits_windows_pcts_and_order():
    assert values("rate_limit_usage", {"at": AT}, tenant_rate_limits=LIMIT_ROWS, api_logs=LIMIT_LOGS) == [
        ("t2", "/b", 4, 40, 400, 4, 4, 4, 100.0, 10.0, 1.0, 1),
        ("t1", "/a", 10, 100, 1000, 2, 4, 6, 20.0, 4.0, 0.6, 0),
        ("t3", "/c", 3, 30, 300, 0, 1, 1, 0.0, 3.33, 0.33, 0),
        ("t0", "/y", 1, 1, 1, 0, 0, 0, 0.0, 0.0, 0.0, 0),
        ("t0", "/z", 1, 1, 1, 0, 0, 0, 0.0, 0.0, 0.0, 0),
        ("t4", "/a", 1, 1, 1, 0, 0, 0, 0.0, 0.0, 0.0, 0),
    ]
    rows = {"tenant_rate_limits": LIMIT_ROWS, "api_logs": LIMIT_LOGS}
    assert [row[:2] for row in values("rate_limit_usage", {"at": AT, "tenant_id": "t0"}, **rows)] == [
        ("t0", "/y"),
        ("t0", "/z"),
    ]
    one_endpoint = values("rate_limit_usage", {"at": AT, "endpoint": "/a"}, **rows)
    assert [row[:2] for row in one_endpoint] == [("t1", "/a"), ("t4", "/a")]


def test_endpoint_performance_rates_percentiles_and_filters():
    rows = [
        log(ms=10),
        log(status=201, ms=20, error_type="Warning"),  # a 2xx with an error_type is not an error
        log(status=404, ms=30),
        log(status=503, ms=40),
        log(method="POST", ms=5),
        log(tenant="t2", endpoint="/b", ms=1),
        log(tenant="t2", endpoint="/b", ms=3),
    ]
    a_get = ("/a", "GET", 4, 25.0, Between(20, 30), Between(30, 40), Between(30, 40), 0.5, 0.5)
    b_get = ("/b", "GET", 2, 2.0, Between(1, 3), Between(1, 3), Between(1, 3), 1.0, 0.0)
    a_post = ("/a", "POST", 1, 5.0, Between(5, 5), Between(5, 5), Between(5, 5), 1.0, 0.0)
    assert values("endpoint_performance", {}, api_logs=rows) == [a_get, b_get, a_post]
    assert values("endpoint_performance", {"limit": "2"}, api_logs=rows) == [a_get, b_get]
    assert values("endpoint_performance", {"tenant_id": "t2"}, api_logs=rows) == [b_get]
    assert values("endpoint_performance", {"method": "POST"}, api_logs=rows) == [a_post]
    assert values("endpoint_performance", {"endpoint": "/a"}, api_logs=rows) == [a_get, a_post]


def test_api_usage_by_tenant():
    rows = [
        log(tenant="t1", user="u1", endpoint="/a", ms=10, request_size_bytes=1, response_size_bytes=10),
        log(tenant="t1", user="u2", status=500, ms=20, request_size_bytes=2, response_size_bytes=20),
        log(tenant="t1", user="u1", endpoint="/b", ms=31, request_size_bytes=3, response_size_bytes=30),
        log(tenant="t2", ms=5, request_size_bytes=4, response_size_bytes=40),
        log("2025-05-02 00:00:00", "t3", "u9", status=404, ms=7, request_size_bytes=5, response_size_bytes=50),
    ]
    t1 = ("t1", 3, 2, 2, 1, 0.3333, 20.33, 6, 60)
    t2 = ("t2", 1, 1, 1, 0, 0.0, 5.0, 4, 40)
    assert values("api_usage_by_tenant", {}, api_logs=rows) == [t1, t2, ("t3", 1, 1, 1, 1, 1.0, 7.0, 5, 50)]
    assert values("api_usage_by_tenant", {"limit": "2"}, api_logs=rows) == [t1, t2]
    assert values("api_usage_by_tenant", {"end_date": f"{DAY} 23:59:59"}, api_logs=rows) == [t1, t2]


def test_user_activity_keeps_a_user_of_two_tenants_apart():
    rows = [
        log(f"{DAY} 10:00:00", "t1", "u1", "/a", ms=10),
        log(f"{DAY} 11:00:00", "t1", "u1", "/b", status=500, ms=20),
        log(f"{DAY} 09:00:00", "t2", "u1", ms=30),
        log(f"{DAY} 08:00:00", "t1", "u2", ms=40),
    ]
    assert values("user_activity", {}, api_logs=rows) == [
        ("t1", "u1", 2, 2, 1, 15.0, f"{DAY} 10:00:00", f"{DAY} 11:00:00"),
        ("t1", "u2", 1, 1, 0, 40.0, f"{DAY} 08:00:00", f"{DAY} 08:00:00"),
        ("t2", "u1", 1, 1, 0, 30.0, f"{DAY} 09:00:00", f"{DAY} 09:00:00"),
    ]
    assert [row[:2] for row in values("user_activity", {"tenant_id": "t2"}, api_logs=rows)] == [("t2", "u1")]
    assert [row[:2] for row in values("user_activity", {"limit": "1"}, api_logs=rows)] == [("t1", "u1")]


def test_error_analysis_counts_status_400_and_above():
    def err(ts, user, status, error_type="ValidationError", message="bad", tenant="t1"):
        return log(f"{DAY} {ts}", tenant, user, status=status, error_type=error_type, error_message=message)

    rows = [
        err("08:00:00", "u1", 200, "Warning", "x"),
        err("10:00:00", "u1", 400),
        err("12:00:00", "u1", 400),
        err("11:00:00", "u2", 400),
        err("09:00:00", "u1", 422),
        err("13:00:00", "u3", 500, "ServerError", "boom", tenant="t2"),
        err("14:00:00", "u3", 399, "X", "y"),
    ]
    validation = ("ValidationError", "bad", 400, 3, 2, f"{DAY} 10:00:00", f"{DAY} 12:00:00")
    server = ("ServerError", "boom", 500, 1, 1, f"{DAY} 13:00:00", f"{DAY} 13:00:00")
    unprocessable = ("ValidationError", "bad", 422, 1, 1, f"{DAY} 09:00:00", f"{DAY} 09:00:00")
    assert values("error_analysis", {}, api_logs=rows) == [validation, server, unprocessable]
    assert values("error_analysis", {"limit": "2"}, api_logs=rows) == [validation, server]
    assert values("error_analysis", {"tenant_id": "t1"}, api_logs=rows) == [validation, unprocessable]


def test_geographic_distribution_share_of_the_filtered_requests():
    rows = [
        log(tenant="t1", user="u1", ms=10, region="eu"),
        log(tenant="t1", user="u2", status=500, ms=20, region="eu"),
        log(tenant="t1", user="u1", ms=30, region="us"),
        log(tenant="t2", user="u3", ms=40, region="ap"),
        log(tenant="t2", user="u3", status=404, ms=50, region="us"),
    ]
    assert values("geographic_distribution", {}, api_logs=rows) == [
        ("eu", 2, 2, 15.0, 0.5, 0.4),
        ("us", 2, 2, 40.0, 0.5, 0.4),
        ("ap", 1, 1, 40.0, 0.0, 0.2),
    ]
    assert values("geographic_distribution", {"tenant_id": "t1"}, api_logs=rows) == [
        ("eu", 2, 2, 15.0, 0.5, 0.6667),
        ("us", 1, 1, 30.0, 0.0, 0.3333),
    ]


def test_usage_metering_months_billable_and_bytes():
    def req(ts, tenant, status, size):
        return log(ts, tenant, status=status, request_size_bytes=size, response_size_bytes=10 * size)

    rows = [
        req("2025-04-30 23:59:59", "t2", 200, 1),
        req("2025-05-01 00:00:00", "t1", 499, 2),
        req("2025-05-31 23:59:59", "t1", 500, 3),
        req("2025-04-15 08:00:00", "t1", 503, 4),
        req("2025-05-10 08:00:00", "t2", 200, 5),
    ]
    april_t1, may_t1 = ("t1", "2025-04-01", 1, 0, 4, 40), ("t1", "2025-05-01", 2, 1, 5, 50)
    assert values("usage_metering", {}, api_logs=rows) == [
        april_t1,
        ("t2", "2025-04-01", 1, 1, 1, 10),
        may_t1,
        ("t2", "2025-05-01", 1, 1, 5, 50),
    ]
    assert values("usage_metering", {"tenant_id": "t1"}, api_logs=rows) == [april_t1, may_t1]


# ---- percentile bounds


def test_between_bounds_and_equality():
    rows = [log(ms=10 * i) for i in range(1, 11)]  # 10, 20, ..., 100
    perf = expected("endpoint_performance", {}, {"api_logs": rows})[0]
    p50, p95, p99 = (perf[f"p{n}_response_time_ms"] for n in (50, 95, 99))
    assert (p50.lo, p50.hi, p95.lo, p95.hi, p99.lo, p99.hi) == (50, 60, 90, 100, 90, 100)
    hundred_and_one = [log(ms=i) for i in range(1, 102)]  # index i holds i + 1: exact percentiles, no widening
    p95 = expected("endpoint_performance", {}, {"api_logs": hundred_and_one})[0]["p95_response_time_ms"]
    assert (p95.lo, p95.hi) == (95, 97)
    assert Between(1, 2) == 1.0000005 and Between(1, 2) == 2 and Between(1, 2) == 1.5
    boolean = True  # a bool is not a number here, though True == 1 in Python
    assert Between(1, 2) != 2.00001 and Between(1, 2) != 0.99 and Between(1, 2) != "1.5" and Between(1, 2) != boolean
    assert repr(Between(1, 2)) == "Between(1, 2)"


# ---- parameters

END = {"end_date": "2025-06-01 23:59:59"}
LIMITED = ["feature_usage_summary", "session_insights", "app_feature_usage", "endpoint_performance"]
LIMITED += ["api_usage_by_tenant", "user_activity", "error_analysis"]


@pytest.mark.parametrize(
    ("endpoint", "params", "param"),
    [
        ("feature_usage", {"start_date": "2025-02-30 10:00:00"}, "start_date"),
        ("feature_usage", {"end_date": "2025-05-01 24:00:00"}, "end_date"),
        ("feature_usage", {"end_date": "2025/05/01"}, "end_date"),
        ("feature_usage", {"end_date": "last tuesday"}, "end_date"),
        ("feature_usage", {"end_date": ""}, "end_date"),
        ("usage_metering", {"start_date": "2025-05-01 10:00"}, "start_date"),
        ("daily_active_users", {"days": "1.5", **END}, "days"),
        ("daily_active_users", {"days": "week", **END}, "days"),
        ("daily_active_users", {"days": "2147483648", **END}, "days"),
        ("daily_active_users", {"end_date": "now"}, "end_date"),
        ("user_event_activity", END, "user_id"),
        ("retention_cohorts", {"weeks": "many"}, "weeks"),
        ("feature_usage_timeline", {"granularity": "year"}, "granularity"),
        ("feature_usage_timeline", {"granularity": "minute"}, "granularity"),
        ("time_series_metrics", {"granularity": "week"}, "granularity"),
        ("active_users", {"interval": "2 days"}, "interval"),
        ("active_users", {"interval": "week"}, "interval"),
        ("rate_limit_usage", {"at": "noon"}, "at"),
        *((name, {"limit": bad}, "limit") for name in LIMITED for bad in ("0", "10001", "ten", "-1", "2.0")),
    ],
)
def test_invalid_parameters_name_the_parameter(endpoint, params, param):
    with pytest.raises(InvalidParam) as raised:
        expected(endpoint, params, {})
    assert raised.value.param == param


@pytest.mark.parametrize("endpoint", LIMITED)
def test_limit_bounds_are_accepted(endpoint):
    rows = {"feature_events": [], "app_events": [], "api_logs": []}
    assert expected(endpoint, {"limit": "1"}, rows) == expected(endpoint, {"limit": "10000"}, rows) == []


@pytest.mark.parametrize(
    ("endpoint", "params"),
    [("daily_active_users", {}), ("user_event_activity", {"user_id": "u1"}), ("rate_limit_usage", {})],
)
def test_windows_anchored_on_now_need_their_pin(endpoint, params):
    with pytest.raises(ValueError, match="pin required"):
        expected(endpoint, params, {"events": [], "api_logs": [], "tenant_rate_limits": []})

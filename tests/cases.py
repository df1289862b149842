"""Parameter sets for every endpoint, chosen from the fixture rows so each filter hits real data.

Used by the oracle tests and by scripts/make_tb_tests.py, which turns the valid ones into the
`tests/<endpoint>.yaml` cases that `tb test run` also runs. Every window is pinned: nothing here
depends on the wall clock.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "fixtures"
SOURCES = ("events", "feature_events", "app_events", "api_logs", "tenant_rate_limits")

END = "2025-06-01 23:59:59"
MONTH = {"start_date": "2025-04-01 00:00:00", "end_date": "2025-04-30 23:59:59"}
# Neither bound on an hour or a day: roll-up reads must still be exact at the edges.
ODD = {"start_date": "2025-04-10 13:17:45", "end_date": "2025-05-20 08:03:12"}
FEW_DAYS = {"start_date": "2025-05-12 06:30:00", "end_date": "2025-05-14 18:15:00"}
ONE_HOUR = {"start_date": "2025-05-13 10:00:00", "end_date": "2025-05-13 10:59:59"}
EIGHT_WEEKS = {"start_date": "2025-03-03 00:00:00", "end_date": "2025-04-27 23:59:59"}
EMPTY = {"start_date": "2024-01-01 00:00:00", "end_date": "2024-01-31 23:59:59"}
BURST = "2025-06-01 12:00:00"  # the generator's rate-limit burst ends here


def load_rows() -> dict[str, list[dict]]:
    import json

    return {
        name: [json.loads(line) for line in (FIXTURES / f"{name}.ndjson").read_text().splitlines() if line.strip()]
        for name in SOURCES
    }


def _top(rows: list[dict], key: str, skip: tuple = ("",)) -> str:
    counts = Counter(r[key] for r in rows if r[key] not in skip)
    return max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]


def valid_cases(rows: dict[str, list[dict]]) -> dict[str, list[tuple[str, dict]]]:
    events, features, app, logs = rows["events"], rows["feature_events"], rows["app_events"], rows["api_logs"]
    user = _top(events, "user_id")
    feature = _top(events, "feature")
    feature_user = _top(features, "user_id")
    feature_id = _top(features, "feature_id")
    version = _top(features, "product_version")
    app_user = _top(app, "user_id")
    app_feature = _top(app, "feature")
    device = _top(app, "device_type")
    tenant = _top(logs, "tenant_id")
    endpoint = _top([r for r in logs if r["tenant_id"] == tenant], "endpoint")
    method = _top(logs, "method")
    return {
        "feature_usage": [
            ("all_time", {}),
            ("one_month", MONTH),
            ("unaligned_window", ODD),
            ("one_feature", {"feature": feature}),
            ("unknown_feature", {"feature": "no_such_feature"}),
        ],
        "daily_active_users": [
            ("last_30_days", {"end_date": END}),
            ("last_7_days", {"end_date": END, "days": "7"}),
            ("unaligned_end", {"end_date": "2025-05-15 12:34:56", "days": "10"}),
            ("before_any_data", {"end_date": "2024-01-01 00:00:00"}),
        ],
        "user_event_activity": [
            ("last_7_days", {"user_id": user, "end_date": END}),
            ("last_60_days", {"user_id": user, "end_date": END, "days": "60"}),
            ("unknown_user", {"user_id": "no_such_user", "end_date": END}),
        ],
        "retention_cohorts": [
            ("all_time", {}),
            ("eight_weeks_4_kept", {**EIGHT_WEEKS, "weeks": "4"}),
            ("unaligned_window", ODD),
            ("from_a_wednesday", {"start_date": "2025-04-02 10:00:00"}),
            ("no_data", EMPTY),
        ],
        "user_feature_usage": [
            ("no_user_no_rows", {}),
            ("one_user", {"user_id": feature_user}),
            ("one_user_one_feature", {"user_id": feature_user, "feature_id": feature_id}),
            ("one_user_one_version", {"user_id": feature_user, "product_version": version}),
        ],
        "feature_usage_summary": [
            ("all_time", {}),
            ("unaligned_window", ODD),
            ("one_feature", {"feature_id": feature_id}),
            ("one_version_top_3", {"product_version": version, "limit": "3"}),
            ("limit_max", {"limit": "10000"}),
        ],
        "feature_usage_timeline": [
            ("daily_one_month", MONTH),
            ("hourly_few_days", {"granularity": "hour", **FEW_DAYS}),
            ("weekly_unaligned", {"granularity": "week", **ODD}),
            ("monthly_one_feature", {"granularity": "month", "feature_id": feature_id}),
            ("daily_one_version", {"product_version": version, **ODD}),
        ],
        "session_insights": [
            ("latest_100", {}),
            ("one_month", MONTH),
            ("one_user", {"user_id": app_user}),
            ("top_5", {"limit": "5", **ODD}),
        ],
        "app_feature_usage": [
            ("all_time", {}),
            ("unaligned_window", ODD),
            ("one_feature", {"feature": app_feature}),
            ("one_device_top_2", {"device_type": device, "limit": "2"}),
        ],
        "active_users": [
            ("daily", MONTH),
            ("weekly", {"interval": "1 week", **ODD}),
            ("monthly_all_time", {"interval": "1 month"}),
        ],
        "time_series_metrics": [
            ("hourly_few_days", FEW_DAYS),
            ("daily_unaligned", {"granularity": "day", **ODD}),
            ("per_minute_one_hour", {"granularity": "minute", **ONE_HOUR}),
            ("one_tenant_hourly", {"tenant_id": tenant, **FEW_DAYS}),
            ("one_endpoint_daily", {"granularity": "day", "tenant_id": tenant, "endpoint": endpoint}),
        ],
        "rate_limit_usage": [
            ("at_the_burst", {"at": BURST}),
            ("one_tenant", {"at": BURST, "tenant_id": tenant}),
            ("one_pair", {"at": BURST, "tenant_id": tenant, "endpoint": endpoint}),
            ("quiet_night", {"at": "2025-05-04 03:00:00"}),
            ("between_hours", {"at": "2025-05-20 15:27:41"}),
        ],
        "endpoint_performance": [
            ("top_10", {}),
            ("unaligned_window", ODD),
            ("one_tenant", {"tenant_id": tenant, **MONTH}),
            ("one_method_top_3", {"method": method, "limit": "3"}),
            ("one_endpoint", {"endpoint": endpoint}),
        ],
        "api_usage_by_tenant": [
            ("top_10", {}),
            ("unaligned_window", ODD),
            ("top_2", {"limit": "2", **MONTH}),
        ],
        "user_activity": [
            ("top_10", {}),
            ("one_tenant", {"tenant_id": tenant}),
            ("one_tenant_window_top_5", {"tenant_id": tenant, "limit": "5", **ODD}),
        ],
        "error_analysis": [
            ("top_10", {}),
            ("one_tenant", {"tenant_id": tenant, **MONTH}),
            ("top_3_unaligned", {"limit": "3", **ODD}),
        ],
        "geographic_distribution": [
            ("all_time", {}),
            ("one_tenant", {"tenant_id": tenant}),
            ("unaligned_window", ODD),
        ],
        "usage_metering": [
            ("all_time", {}),
            ("one_tenant", {"tenant_id": tenant}),
            ("unaligned_window", ODD),
        ],
    }


BAD_DATE = "2025-02-30 10:00:00"


def invalid_cases() -> dict[str, list[tuple[str, dict, str]]]:
    """(case name, parameters, the parameter the error must name) for every endpoint."""
    limits = [("limit_zero", {"limit": "0"}), ("limit_too_big", {"limit": "10001"}), ("limit_text", {"limit": "ten"})]
    by_endpoint: dict[str, list[tuple[str, dict, str]]] = {}
    for name in (
        "feature_usage_summary",
        "session_insights",
        "app_feature_usage",
        "endpoint_performance",
        "api_usage_by_tenant",
        "user_activity",
        "error_analysis",
    ):
        by_endpoint[name] = [(case, params, "limit") for case, params in limits]
    for name in by_endpoint | {
        "feature_usage": 0,
        "retention_cohorts": 0,
        "feature_usage_timeline": 0,
        "active_users": 0,
        "time_series_metrics": 0,
        "geographic_distribution": 0,
        "usage_metering": 0,
    }:
        by_endpoint.setdefault(name, []).append(("impossible_start_date", {"start_date": BAD_DATE}, "start_date"))
        by_endpoint[name].append(("end_date_text", {"end_date": "last tuesday"}, "end_date"))
    by_endpoint["daily_active_users"] = [
        ("days_text", {"days": "week", "end_date": END}, "days"),
        ("end_date_text", {"end_date": "now"}, "end_date"),
    ]
    by_endpoint["user_event_activity"] = [
        ("missing_user", {"end_date": END}, "user_id"),
        ("days_float", {"user_id": "u", "days": "1.5", "end_date": END}, "days"),
    ]
    by_endpoint["retention_cohorts"].append(("weeks_text", {"weeks": "many"}, "weeks"))
    by_endpoint["feature_usage_timeline"].append(("granularity_year", {"granularity": "year"}, "granularity"))
    by_endpoint["active_users"].append(("interval_2_days", {"interval": "2 days"}, "interval"))
    by_endpoint["time_series_metrics"].append(("granularity_week", {"granularity": "week"}, "granularity"))
    by_endpoint["rate_limit_usage"] = [("at_text", {"at": "noon"}, "at")]
    return by_endpoint

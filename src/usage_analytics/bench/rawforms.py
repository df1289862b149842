"""The questions the roll-up-backed endpoints answer, asked of the raw tables instead.

Tests compare each endpoint with its raw form (the roll-up must not change an answer), and the
benchmark times both (what the roll-up buys). Percentiles here are exact (quantilesExact), so a test
compares them within the contract's band, not for equality. The SQL is written with `{name:Type}`
placeholders; `raw_query` fills them with quoted literals so the text runs anywhere (`/v0/sql` too).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..local.engine import quote_text
from .endpoints import defaults

_PLACEHOLDER = re.compile(r"\{(\w+):(\w+)\}")


def where(params: dict, filters: tuple[str, ...] = (), mark=lambda name, ch_type: f"{{{name}:{ch_type}}}") -> str:
    """The inclusive time window and equality filters that `params` asks for; `mark` writes a placeholder."""
    clauses = ["1 = 1"]
    if "start_date" in params:
        clauses.append(f"timestamp >= {mark('start_date', 'DateTime')}")
    if "end_date" in params:
        clauses.append(f"timestamp <= {mark('end_date', 'DateTime')}")
    clauses += [f"{f} = {mark(f, 'String')}" for f in filters if f in params]
    return " AND ".join(clauses)


def _bucket(expr: str, granularity: str) -> str:
    return {
        "minute": f"toStartOfMinute({expr})",
        "hour": f"toStartOfHour({expr})",
        "day": f"toStartOfDay({expr})",
        "week": f"toDateTime(toMonday({expr}))",
        "month": f"toDateTime(toStartOfMonth({expr}))",
    }[granularity]


def _latency(points: str) -> str:
    return f"quantilesExact({points})(response_time_ms)"


def time_series_metrics(p: dict) -> str:
    return f"""
        SELECT {_bucket("timestamp", p.get("granularity", "hour"))} AS period, count() AS request_count,
            countIf(status_code >= 400) AS error_count, round(error_count / request_count, 4) AS error_rate,
            round(avg(response_time_ms), 2) AS avg_response_time_ms,
            round({_latency("0.95, 0.99")}[1], 2) AS p95_response_time_ms,
            round({_latency("0.95, 0.99")}[2], 2) AS p99_response_time_ms
        FROM api_logs WHERE {where(p, ("tenant_id", "endpoint"))} GROUP BY period ORDER BY period"""


def endpoint_performance(p: dict) -> str:
    return f"""
        SELECT endpoint, method, count() AS request_count, round(avg(response_time_ms), 2) AS avg_response_time_ms,
            round({_latency("0.5, 0.95, 0.99")}[1], 2) AS p50_response_time_ms,
            round({_latency("0.5, 0.95, 0.99")}[2], 2) AS p95_response_time_ms,
            round({_latency("0.5, 0.95, 0.99")}[3], 2) AS p99_response_time_ms,
            round(1 - error_rate, 4) AS success_rate,
            round(countIf(status_code >= 400) / request_count, 4) AS error_rate
        FROM api_logs WHERE {where(p, ("tenant_id", "method", "endpoint"))}
        GROUP BY endpoint, method ORDER BY request_count DESC, endpoint, method
        LIMIT {{limit:Int32}}"""


def api_usage_by_tenant(p: dict) -> str:
    return f"""
        SELECT tenant_id, count() AS request_count, uniqExact(user_id) AS unique_users,
            uniqExact(endpoint) AS unique_endpoints, countIf(status_code >= 400) AS error_count,
            round(error_count / request_count, 4) AS error_rate,
            round(avg(response_time_ms), 2) AS avg_response_time_ms,
            sum(request_size_bytes) AS total_request_bytes, sum(response_size_bytes) AS total_response_bytes
        FROM api_logs WHERE {where(p)} GROUP BY tenant_id ORDER BY request_count DESC, tenant_id
        LIMIT {{limit:Int32}}"""


def user_activity(p: dict) -> str:
    return f"""
        SELECT tenant_id, user_id, count() AS request_count, uniqExact(endpoint) AS unique_endpoints,
            countIf(status_code >= 400) AS error_count, round(avg(response_time_ms), 2) AS avg_response_time_ms,
            min(timestamp) AS first_request, max(timestamp) AS last_request
        FROM api_logs WHERE {where(p, ("tenant_id",))} GROUP BY tenant_id, user_id
        ORDER BY request_count DESC, tenant_id, user_id LIMIT {{limit:Int32}}"""


def geographic_distribution(p: dict) -> str:
    return f"""
        SELECT region, count() AS request_count, uniqExact(user_id) AS unique_users,
            round(avg(response_time_ms), 2) AS avg_response_time_ms,
            round(countIf(status_code >= 400) / request_count, 4) AS error_rate,
            round(request_count / sum(request_count) OVER (), 4) AS share
        FROM api_logs WHERE {where(p, ("tenant_id",))} GROUP BY region ORDER BY request_count DESC, region"""


def usage_metering(p: dict) -> str:
    return f"""
        SELECT tenant_id, toStartOfMonth(timestamp) AS month, count() AS total_requests,
            countIf(status_code < 500) AS billable_requests, sum(request_size_bytes) AS request_bytes,
            sum(response_size_bytes) AS response_bytes
        FROM api_logs WHERE {where(p, ("tenant_id",))} GROUP BY tenant_id, month ORDER BY month, tenant_id"""


def error_analysis(p: dict) -> str:
    return f"""
        SELECT error_type, error_message, status_code, count() AS error_count, uniqExact(user_id) AS affected_users,
            min(timestamp) AS first_seen, max(timestamp) AS last_seen
        FROM api_logs WHERE status_code >= 400 AND {where(p, ("tenant_id",))}
        GROUP BY error_type, error_message, status_code
        ORDER BY error_count DESC, error_type, error_message, status_code LIMIT {{limit:Int32}}"""


def feature_usage(p: dict) -> str:
    features = "" if "feature" in p else " AND feature != ''"
    return f"""
        SELECT feature, count() AS usage_count, uniqExact(user_id) AS unique_users
        FROM events WHERE {where(p, ("feature",))}{features}
        GROUP BY feature ORDER BY usage_count DESC, feature"""


def session_insights(p: dict) -> str:
    keys = "session_id, user_id, device_type, browser, os, location"
    return f"""
        SELECT session_id, user_id, min(timestamp) AS session_start, max(timestamp) AS session_end,
            dateDiff('second', session_start, session_end) AS session_duration_seconds, count() AS event_count,
            device_type, browser, os, location
        FROM app_events WHERE {where(p, ("user_id",))}
        GROUP BY {keys} HAVING session_duration_seconds > 0
        ORDER BY session_start DESC, {keys} LIMIT {{limit:Int32}}"""


def feature_usage_summary(p: dict) -> str:
    return f"""
        SELECT feature_id, product_version, count() AS usage_count, uniqExact(user_id) AS unique_users,
            uniqExact(session_id) AS unique_sessions, min(timestamp) AS first_usage, max(timestamp) AS last_usage
        FROM feature_events WHERE {where(p, ("feature_id", "product_version"))}
        GROUP BY feature_id, product_version ORDER BY usage_count DESC, feature_id, product_version
        LIMIT {{limit:Int32}}"""


def app_feature_usage(p: dict) -> str:
    features = "" if "feature" in p else " AND feature != ''"
    return f"""
        SELECT feature, count() AS usage_count, uniqExact(user_id) AS unique_users,
            uniqExact(session_id) AS unique_sessions
        FROM app_events WHERE {where(p, ("feature", "device_type"))}{features}
        GROUP BY feature ORDER BY usage_count DESC, feature LIMIT {{limit:Int32}}"""


def user_feature_usage(p: dict) -> str:
    user = "" if "user_id" in p else " AND 0 = 1"  # no user: no rows, as the seed's `AND 0=1`
    return f"""
        SELECT user_id, feature_id, product_version, count() AS usage_count, min(timestamp) AS first_usage,
            max(timestamp) AS last_usage
        FROM feature_events WHERE {where(p, ("user_id", "feature_id", "product_version"))}{user}
        GROUP BY user_id, feature_id, product_version ORDER BY usage_count DESC, feature_id, product_version"""


def feature_usage_timeline(p: dict) -> str:
    return f"""
        SELECT {_bucket("timestamp", p.get("granularity", "day"))} AS period, feature_id, count() AS usage_count,
            uniqExact(user_id) AS unique_users
        FROM feature_events WHERE {where(p, ("feature_id", "product_version"))}
        GROUP BY period, feature_id ORDER BY period, feature_id"""


def retention_cohorts(p: dict) -> str:
    return f"""
        SELECT cohort_week, week_number, max(if(week_number = 0, active_users, 0)) OVER (PARTITION BY cohort_week)
            AS cohort_size, active_users, round(active_users / cohort_size, 4) AS retention_rate
        FROM (
            SELECT arrayMin(weeks) AS cohort_week,
                toUInt32(intDiv(dateDiff('day', cohort_week, arrayJoin(weeks)), 7)) AS week_number,
                count() AS active_users
            FROM (SELECT user_id, groupUniqArray(toMonday(timestamp)) AS weeks FROM events WHERE {where(p)}
                GROUP BY user_id)
            GROUP BY cohort_week, week_number)
        WHERE week_number < {{weeks:Int32}} ORDER BY cohort_week, week_number"""


def daily_active_users(p: dict) -> str:
    return """
        SELECT toDate(timestamp) AS date, uniqExact(user_id) AS active_users FROM events
        WHERE timestamp > {end_date:DateTime} - toIntervalDay({days:Int32}) AND timestamp <= {end_date:DateTime}
        GROUP BY date ORDER BY date DESC"""


def active_users(p: dict) -> str:
    interval = p.get("interval", "1 day")
    period = {"1 day": "toDate(timestamp)", "1 week": "toMonday(timestamp)", "1 month": "toStartOfMonth(timestamp)"}
    return f"""
        SELECT {period[interval]} AS period, uniqExact(user_id) AS active_users FROM app_events
        WHERE {where(p)} GROUP BY period ORDER BY period"""


RAW_FORMS = {
    f.__name__: f
    for f in (
        time_series_metrics,
        endpoint_performance,
        api_usage_by_tenant,
        user_activity,
        geographic_distribution,
        usage_metering,
        error_analysis,
        feature_usage,
        feature_usage_summary,
        app_feature_usage,
        session_insights,
        user_feature_usage,
        feature_usage_timeline,
        daily_active_users,
        active_users,
        retention_cohorts,
    )
}


def _literal(value: str, ch_type: str) -> str:
    if ch_type == "Int32":
        return str(int(value))
    quoted = quote_text(value)
    return f"toDateTime({quoted})" if ch_type == "DateTime" else quoted


def raw_query(endpoint: str, params: dict, project_dir: Path) -> str:
    """The SQL over the raw tables that answers `endpoint` for these query parameters; a parameter left out takes
    the default that `endpoint`'s pipe in `project_dir` declares."""
    values = {**defaults(project_dir, endpoint), **params}
    sql = RAW_FORMS[endpoint](values)
    return _PLACEHOLDER.sub(lambda m: _literal(values[m.group(1)], m.group(2)), sql)

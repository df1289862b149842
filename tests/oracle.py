"""Independent oracle for the 18 endpoints of docs/ENDPOINTS.md: plain Python over the raw fixture rows.

Written from the contract alone, never from the project's SQL, so that comparing an endpoint's `data`
with `expected(...)` checks the SQL against the contract's meaning. Values come back in Tinybird's JSON
form: integers as int, rates and averages as floats rounded as the contract says, DateTime as
'YYYY-MM-DD HH:MM:SS', Date as 'YYYY-MM-DD'. Percentiles, which an endpoint may approximate from
pre-aggregated states, come back as `Between` the exact percentiles one point below and above.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta

# Output columns in contract order (docs/ENDPOINTS.md), written as space-separated names.
_COLUMNS = {
    "feature_usage": "feature usage_count unique_users",
    "daily_active_users": "date active_users",
    "user_event_activity": "event_type event_count last_seen",
    "retention_cohorts": "cohort_week week_number cohort_size active_users retention_rate",
    "user_feature_usage": "user_id feature_id product_version usage_count first_usage last_usage",
    "feature_usage_summary": "feature_id product_version usage_count unique_users unique_sessions "
    "first_usage last_usage",
    "feature_usage_timeline": "period feature_id usage_count unique_users",
    "session_insights": "session_id user_id session_start session_end session_duration_seconds event_count "
    "device_type browser os location",
    "app_feature_usage": "feature usage_count unique_users unique_sessions",
    "active_users": "period active_users",
    "time_series_metrics": "period request_count error_count error_rate avg_response_time_ms "
    "p95_response_time_ms p99_response_time_ms",
    "rate_limit_usage": "tenant_id endpoint requests_per_minute requests_per_hour requests_per_day "
    "requests_last_minute requests_last_hour requests_last_day "
    "minute_usage_pct hour_usage_pct day_usage_pct is_limited",
    "endpoint_performance": "endpoint method request_count avg_response_time_ms p50_response_time_ms "
    "p95_response_time_ms p99_response_time_ms success_rate error_rate",
    "api_usage_by_tenant": "tenant_id request_count unique_users unique_endpoints error_count error_rate "
    "avg_response_time_ms total_request_bytes total_response_bytes",
    "user_activity": "tenant_id user_id request_count unique_endpoints error_count avg_response_time_ms "
    "first_request last_request",
    "error_analysis": "error_type error_message status_code error_count affected_users first_seen last_seen",
    "geographic_distribution": "region request_count unique_users avg_response_time_ms error_rate share",
    "usage_metering": "tenant_id month total_requests billable_requests request_bytes response_bytes",
}
ENDPOINTS: dict[str, tuple[str, ...]] = {name: tuple(cols.split()) for name, cols in _COLUMNS.items()}


class InvalidParam(Exception):
    """Tinybird's HTTP 400: a value of the wrong type, an unknown enum value, a missing required one."""

    def __init__(self, param: str, reason: str = "invalid value"):
        super().__init__(f"{param}: {reason}")
        self.param = param


class Between:
    """A percentile an endpoint may approximate: equal to any number in [lo, hi], with float slack."""

    __hash__ = None  # type: ignore[assignment]  # equality is a range test, so no hash

    def __init__(self, lo: float, hi: float):
        self.lo, self.hi = lo, hi

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Between):
            return (self.lo, self.hi) == (other.lo, other.hi)
        if isinstance(other, bool) or not isinstance(other, int | float):
            return False
        return self.lo - 1e-6 <= other <= self.hi + 1e-6

    def __repr__(self) -> str:
        return f"Between({self.lo!r}, {self.hi!r})"


# ---- parameters: each parser takes (name, raw string or None) and returns the typed value or raises

Parser = Callable[[str, "str | None"], object]
_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}):(\d{2}))?", re.ASCII)
_INT = re.compile(r"-?\d+", re.ASCII)
_INT32 = range(-(2**31), 2**31)


def _datetime(name: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    match = _DATETIME.fullmatch(raw)
    try:
        if match:  # datetime() also rejects dates that do not exist, such as February 30
            return datetime(*(int(part or 0) for part in match.groups()))
    except ValueError:
        pass
    raise InvalidParam(name, f"{raw!r} is not a DateTime 'YYYY-MM-DD HH:MM:SS'")


def _string(name: str, raw: str | None) -> str | None:
    return raw  # a passed '' is a defined value: Tinybird's defined() is true for `?feature=`


def _required(name: str, raw: str | None) -> str:
    if raw is None:
        raise InvalidParam(name, "is required")
    return raw


def _int32(default: int) -> Parser:
    def parse(name: str, raw: str | None) -> int:
        if raw is None:
            return default
        if not _INT.fullmatch(raw) or int(raw) not in _INT32:
            raise InvalidParam(name, f"{raw!r} is not an Int32")
        return int(raw)

    return parse


def _limit(default: int) -> Parser:
    as_int = _int32(default)

    def parse(name: str, raw: str | None) -> int:
        value = as_int(name, raw)
        if not 1 <= value <= 10000:
            raise InvalidParam(name, "must be between 1 and 10000")
        return value

    return parse


def _enum(default: str, *choices: str) -> Parser:
    def parse(name: str, raw: str | None) -> str:
        if raw is None:
            return default
        if raw not in choices:
            raise InvalidParam(name, f"{raw!r} is not one of {', '.join(choices)}")
        return raw

    return parse


def _parse(params: dict[str, str], **spec: Parser) -> dict:
    """Typed values of the parameters in `spec`, checked in contract order; unknown params are ignored."""
    raw = {name: None if params.get(name) is None else str(params[name]) for name in spec}
    return {name: parse(name, raw[name]) for name, parse in spec.items()}


WINDOW: dict[str, Parser] = {"start_date": _datetime, "end_date": _datetime}


def _pin(p: dict, name: str) -> datetime:
    if p[name] is None:  # the windows the seeds anchor on now(): the oracle never reads the wall clock
        raise ValueError("pin required")
    return p[name]


# ---- rows, windows, groups and aggregates

Item = tuple[datetime, dict]  # a row with its parsed timestamp


_ts = datetime.fromisoformat  # rows carry 'YYYY-MM-DD HH:MM:SS' (UTC)


def _select(rows: Iterable[dict], p: dict, *match: str) -> list[Item]:
    """Rows inside start_date..end_date (both inclusive, absent = unbounded) whose `match` columns equal
    the parameters of the same name when those are given."""
    start, end = p.get("start_date"), p.get("end_date")
    selected = []
    for row in rows:
        ts = _ts(row["timestamp"])
        if (start is not None and ts < start) or (end is not None and ts > end):
            continue
        if _matches(row, p, *match):
            selected.append((ts, row))
    return selected


def _matches(row: dict, p: dict, *cols: str) -> bool:
    return all(p[col] is None or row[col] == p[col] for col in cols)


def _nonempty_feature(items: list[Item], p: dict) -> list[Item]:
    """Without a `feature` parameter the feature endpoints skip rows whose feature is ''."""
    return items if p["feature"] is not None else [(ts, r) for ts, r in items if r["feature"] != ""]


def _days_before(end: datetime, days: int) -> datetime:
    try:
        return end - timedelta(days=days)
    except OverflowError:  # a huge `days` (Int32 allows it) makes an unbounded or an empty window
        return datetime.min if days > 0 else datetime.max


def _group(items: list[Item], key: Callable[[datetime, dict], object]) -> dict:
    groups: dict = {}
    for ts, row in items:
        groups.setdefault(key(ts, row), []).append((ts, row))
    return groups


def _by(*cols: str) -> Callable[[datetime, dict], tuple]:
    return lambda ts, row: tuple(row[c] for c in cols)


def _bucket(ts: datetime, unit: str) -> datetime:
    """Start of the minute/hour/day/week (Monday)/month containing ts."""
    if unit == "minute":
        return ts.replace(second=0)
    if unit == "hour":
        return ts.replace(minute=0, second=0)
    midnight = datetime(ts.year, ts.month, ts.day)
    if unit == "day":
        return midnight
    if unit == "week":
        return midnight - timedelta(days=ts.weekday())
    return midnight.replace(day=1)


def _fmt(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def _span(items: list[Item]) -> tuple[str, str]:
    """The first and last timestamps of a group."""
    return _fmt(min(ts for ts, _ in items)), _fmt(max(ts for ts, _ in items))


def _sum(items: list[Item], col: str) -> int:
    return sum(row[col] for _, row in items)


def _distinct(items: list[Item], col: str) -> int:
    return len({row[col] for _, row in items})


def _errors(items: list[Item]) -> int:
    return sum(1 for _, row in items if row["status_code"] >= 400)


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4)


def _avg_ms(items: list[Item]) -> float:
    return round(_sum(items, "response_time_ms") / len(items), 2)


def _percentile(items: list[Item], point: int) -> Between:
    """The exact p(point-1) .. p(point+1) range, widened to whole order statistics (integer arithmetic,
    so no float error can narrow it)."""
    values = sorted(row["response_time_ms"] for _, row in items)
    last = len(values) - 1
    lo = (point - 1) * last // 100
    hi = -(-(point + 1) * last // 100)
    return Between(values[lo], values[hi])


# ---- events


def _feature_usage(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, **WINDOW, feature=_string)
    items = _nonempty_feature(_select(rows["events"], p, "feature"), p)
    out = [(f, len(g), _distinct(g, "user_id")) for (f,), g in _group(items, _by("feature")).items()]
    return sorted(out, key=lambda o: (-o[1], o[0]))


def _daily_active_users(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, days=_int32(30), end_date=_datetime)
    start = _days_before(_pin(p, "end_date"), p["days"])
    items = [(ts, r) for ts, r in _select(rows["events"], p) if ts > start]
    groups = _group(items, lambda ts, r: ts.date())
    return sorted(((day.isoformat(), _distinct(g, "user_id")) for day, g in groups.items()), reverse=True)


def _user_event_activity(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, user_id=_required, days=_int32(7), end_date=_datetime)
    start = _days_before(_pin(p, "end_date"), p["days"])
    items = [(ts, r) for ts, r in _select(rows["events"], p, "user_id") if ts > start]
    out = [(t, len(g), _span(g)[1]) for (t,), g in _group(items, _by("event_type")).items()]
    return sorted(out, key=lambda o: (-o[1], o[0]))


def _retention_cohorts(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, **WINDOW, weeks=_int32(8))
    mondays: dict[str, set[date]] = {}  # user -> Mondays of the weeks with an event in the window
    for ts, row in _select(rows["events"], p):
        mondays.setdefault(row["user_id"], set()).add(_bucket(ts, "week").date())
    cohort_of = {user: min(weeks) for user, weeks in mondays.items()}
    sizes = Counter(cohort_of.values())
    active: Counter = Counter()
    for user, weeks in mondays.items():
        for monday in weeks:
            week_number = (monday - cohort_of[user]).days // 7
            if week_number < p["weeks"]:
                active[cohort_of[user], week_number] += 1
    return sorted(
        (cohort.isoformat(), n, sizes[cohort], users, _rate(users, sizes[cohort]))
        for (cohort, n), users in active.items()
    )


# ---- feature_events


def _user_feature_usage(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, user_id=_string, feature_id=_string, product_version=_string)
    if p["user_id"] is None:
        return []  # the seed's `AND 0=1`: no user, no rows
    keys = ("user_id", "feature_id", "product_version")
    groups = _group(_select(rows["feature_events"], p, *keys), _by(*keys))
    out = [(*key, len(g), *_span(g)) for key, g in groups.items()]
    return sorted(out, key=lambda o: (-o[3], o[1], o[2]))


def _feature_usage_summary(params: dict, rows: dict) -> list[tuple]:
    spec = {"feature_id": _string, "product_version": _string, "limit": _limit(100)}
    p = _parse(params, **WINDOW, **spec)
    items = _select(rows["feature_events"], p, "feature_id", "product_version")
    out = [
        (*key, len(g), _distinct(g, "user_id"), _distinct(g, "session_id"), *_span(g))
        for key, g in _group(items, _by("feature_id", "product_version")).items()
    ]
    return sorted(out, key=lambda o: (-o[2], o[0], o[1]))[: p["limit"]]


def _feature_usage_timeline(params: dict, rows: dict) -> list[tuple]:
    granularity = _enum("day", "hour", "day", "week", "month")
    p = _parse(params, granularity=granularity, **WINDOW, feature_id=_string, product_version=_string)
    items = _select(rows["feature_events"], p, "feature_id", "product_version")
    groups = _group(items, lambda ts, r: (_bucket(ts, p["granularity"]), r["feature_id"]))
    return sorted((_fmt(period), f, len(g), _distinct(g, "user_id")) for (period, f), g in groups.items())


# ---- app_events

SESSION_KEYS = ("session_id", "user_id", "device_type", "browser", "os", "location")


def _session_insights(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, **WINDOW, user_id=_string, limit=_limit(100))
    out = []
    sessions = _group(_select(rows["app_events"], p, "user_id"), _by(*SESSION_KEYS))
    for (session, user, device, browser, os_, location), g in sessions.items():
        first, last = _span(g)
        duration = int((_ts(last) - _ts(first)).total_seconds())
        if duration > 0:  # the seed's HAVING session_duration_seconds > 0
            out.append((session, user, first, last, duration, len(g), device, browser, os_, location))
    # The contract orders by session_start desc, session_id; one session seen with two devices (etc.) makes
    # two groups, so the rest of the grouping key (user_id, device_type, browser, os, location, ascending)
    # completes the order. Stable sorts: tie-breakers first, then session_start descending.
    out.sort(key=lambda o: (o[0], o[1], *o[6:]))
    out.sort(key=lambda o: o[2], reverse=True)
    return out[: p["limit"]]


def _app_feature_usage(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, **WINDOW, feature=_string, device_type=_string, limit=_limit(100))
    items = _nonempty_feature(_select(rows["app_events"], p, "feature", "device_type"), p)
    out = [
        (f, len(g), _distinct(g, "user_id"), _distinct(g, "session_id"))
        for (f,), g in _group(items, _by("feature")).items()
    ]
    return sorted(out, key=lambda o: (-o[1], o[0]))[: p["limit"]]


def _active_users(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, **WINDOW, interval=_enum("1 day", "1 day", "1 week", "1 month"))
    unit = p["interval"].split()[1]
    groups = _group(_select(rows["app_events"], p), lambda ts, r: _bucket(ts, unit).date())
    return sorted((period.isoformat(), _distinct(g, "user_id")) for period, g in groups.items())


# ---- api_logs and tenant_rate_limits


def _time_series_metrics(params: dict, rows: dict) -> list[tuple]:
    granularity = _enum("hour", "minute", "hour", "day")
    p = _parse(params, granularity=granularity, **WINDOW, tenant_id=_string, endpoint=_string)
    items = _select(rows["api_logs"], p, "tenant_id", "endpoint")
    out = []
    for period, g in _group(items, lambda ts, r: _bucket(ts, p["granularity"])).items():
        errors = _errors(g)
        row = (_fmt(period), len(g), errors, _rate(errors, len(g)), _avg_ms(g))
        out.append((*row, _percentile(g, 95), _percentile(g, 99)))
    return sorted(out, key=lambda o: o[0])


def _usage_pct(requests: int, limit: int) -> float:
    if limit == 0:  # float division as ClickHouse does it: x/0 is inf, 0/0 is nan
        return float("inf") if requests else float("nan")
    return round(100 * requests / limit, 2)


def _rate_limit_usage(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, tenant_id=_string, endpoint=_string, at=_datetime)
    at = _pin(p, "at")
    latest: dict[tuple[str, str], dict] = {}
    for row in rows["tenant_rate_limits"]:
        key = (row["tenant_id"], row["endpoint"])
        # The latest updated_at wins; on equal updated_at the row sent later replaces the earlier one.
        if key not in latest or _ts(row["updated_at"]) >= _ts(latest[key]["updated_at"]):
            latest[key] = row
    ages: dict[tuple[str, str], list[float]] = {key: [] for key in latest}  # seconds before `at`
    for row in rows["api_logs"]:
        key = (row["tenant_id"], row["endpoint"])
        if key in ages:
            age = (at - _ts(row["timestamp"])).total_seconds()
            if 0 <= age < 86400:  # timestamp > at - 1 day and timestamp <= at
                ages[key].append(age)
    out = []
    for (tenant, endpoint), limits in latest.items():
        if not _matches(limits, p, "tenant_id", "endpoint"):
            continue
        caps = [limits["requests_per_minute"], limits["requests_per_hour"], limits["requests_per_day"]]
        used = [sum(1 for age in ages[tenant, endpoint] if age < span) for span in (60, 3600, 86400)]
        pcts = [_usage_pct(n, cap) for n, cap in zip(used, caps, strict=True)]
        # "any pct is at least 100" reads the output columns, i.e. the pcts rounded to 2 decimals; they
        # differ from the unrounded ones only for 99.995 <= pct < 100. The order uses the same rounded pcts.
        is_limited = int(any(pct >= 100 for pct in pcts))
        out.append((tenant, endpoint, *caps, *used, *pcts, is_limited))
    out.sort(key=lambda o: (o[0], o[1]))
    # nan (0/0 with a zero limit) sorts last, as ClickHouse puts NaN last.
    out.sort(key=lambda o: max(x if x == x else float("-inf") for x in o[8:11]), reverse=True)
    return out


def _endpoint_performance(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, **WINDOW, tenant_id=_string, method=_string, endpoint=_string, limit=_limit(10))
    items = _select(rows["api_logs"], p, "tenant_id", "method", "endpoint")
    out = []
    for (endpoint, method), g in _group(items, _by("endpoint", "method")).items():
        n, errors = len(g), _errors(g)
        percentiles = (_percentile(g, 50), _percentile(g, 95), _percentile(g, 99))
        out.append((endpoint, method, n, _avg_ms(g), *percentiles, _rate(n - errors, n), _rate(errors, n)))
    return sorted(out, key=lambda o: (-o[2], o[0], o[1]))[: p["limit"]]


def _api_usage_by_tenant(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, **WINDOW, limit=_limit(10))
    out = []
    for (tenant,), g in _group(_select(rows["api_logs"], p), _by("tenant_id")).items():
        n, errors = len(g), _errors(g)
        users, endpoints = _distinct(g, "user_id"), _distinct(g, "endpoint")
        bytes_in, bytes_out = _sum(g, "request_size_bytes"), _sum(g, "response_size_bytes")
        out.append((tenant, n, users, endpoints, errors, _rate(errors, n), _avg_ms(g), bytes_in, bytes_out))
    return sorted(out, key=lambda o: (-o[1], o[0]))[: p["limit"]]


def _user_activity(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, tenant_id=_string, **WINDOW, limit=_limit(10))
    items = _select(rows["api_logs"], p, "tenant_id")
    out = [
        (tenant, user, len(g), _distinct(g, "endpoint"), _errors(g), _avg_ms(g), *_span(g))
        for (tenant, user), g in _group(items, _by("tenant_id", "user_id")).items()
    ]
    return sorted(out, key=lambda o: (-o[2], o[0], o[1]))[: p["limit"]]


def _error_analysis(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, **WINDOW, tenant_id=_string, limit=_limit(10))
    items = [(ts, r) for ts, r in _select(rows["api_logs"], p, "tenant_id") if r["status_code"] >= 400]
    out = [
        (*key, len(g), _distinct(g, "user_id"), *_span(g))
        for key, g in _group(items, _by("error_type", "error_message", "status_code")).items()
    ]
    return sorted(out, key=lambda o: (-o[3], o[0], o[1], o[2]))[: p["limit"]]


def _geographic_distribution(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, **WINDOW, tenant_id=_string)
    items = _select(rows["api_logs"], p, "tenant_id")
    out = []
    for (region,), g in _group(items, _by("region")).items():
        n, users = len(g), _distinct(g, "user_id")
        out.append((region, n, users, _avg_ms(g), _rate(_errors(g), n), _rate(n, len(items))))
    return sorted(out, key=lambda o: (-o[1], o[0]))


def _usage_metering(params: dict, rows: dict) -> list[tuple]:
    p = _parse(params, **WINDOW, tenant_id=_string)
    items = _select(rows["api_logs"], p, "tenant_id")
    out = []
    by_month = _group(items, lambda ts, r: (r["tenant_id"], date(ts.year, ts.month, 1)))
    for (tenant, month), g in by_month.items():
        billable = sum(1 for _, r in g if r["status_code"] < 500)
        # bytes count every request of the month, billable or not
        bytes_in, bytes_out = _sum(g, "request_size_bytes"), _sum(g, "response_size_bytes")
        out.append((tenant, month.isoformat(), len(g), billable, bytes_in, bytes_out))
    return sorted(out, key=lambda o: (o[1], o[0]))


def expected(endpoint: str, params: dict[str, str], rows: dict[str, list[dict]]) -> list[dict]:
    """The `data` array `endpoint` must return for `params` over `rows` (datasource -> NDJSON rows)."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}")
    compute = globals()[f"_{endpoint}"]  # each endpoint's function is named after it
    return [dict(zip(ENDPOINTS[endpoint], values, strict=True)) for values in compute(params, rows)]

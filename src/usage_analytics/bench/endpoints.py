"""What the benchmark asks of the endpoints: a fixed mix of parameter sets per endpoint, and the parameters'
declared defaults, read from the pipes themselves (the `tinybird` package's template parsing, as the server
reads them)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from ..generator.timeline import BASE_DATE, START
from ..local.pipes import Parameter, declared_parameters
from ..local.project import load_project

_FORMAT = "%Y-%m-%d %H:%M:%S"


def _window(start: datetime, end: datetime) -> dict[str, str]:
    return {"start_date": start.strftime(_FORMAT), "end_date": end.strftime(_FORMAT)}


LAST_SECOND = BASE_DATE - timedelta(seconds=1)  # the generator's data ends just before BASE_DATE
WINDOW_ALL = _window(START, LAST_SECOND)  # all of the generated data
WINDOW_MONTH = _window(datetime(2025, 5, 1), datetime(2025, 5, 31, 23, 59, 59))
WINDOW_ODD = _window(datetime(2025, 4, 10, 13, 17, 45), datetime(2025, 5, 20, 8, 3, 12))  # aligned to nothing
WINDOW_DAY = _window(datetime(2025, 5, 13), datetime(2025, 5, 13, 23, 59, 59))
END = LAST_SECOND.strftime(_FORMAT)

# A fixed mix of parameter sets per endpoint: different windows, tenants and filters.
MIX: dict[str, list[dict]] = {
    "feature_usage": [{}, WINDOW_MONTH, WINDOW_ODD, {"feature": "dashboard"}],
    "daily_active_users": [{"end_date": END}, {"end_date": "2025-05-15 12:34:56", "days": "60"}],
    "user_event_activity": [{"user_id": "user_00000", "end_date": END, "days": "30"}],
    "retention_cohorts": [WINDOW_ALL, {**WINDOW_ODD, "weeks": "4"}],
    "user_feature_usage": [{"user_id": "user_00000"}, {"user_id": "user_00001", "feature_id": "feature_dashboard"}],
    "feature_usage_summary": [{}, WINDOW_ODD, {"feature_id": "feature_dashboard"}],
    "feature_usage_timeline": [
        WINDOW_MONTH,
        {"granularity": "week", **WINDOW_ODD},
        {"granularity": "hour", **WINDOW_DAY},
    ],
    "session_insights": [WINDOW_MONTH, {"user_id": "user_00000"}],
    "app_feature_usage": [{}, WINDOW_ODD, {"device_type": "mobile"}],
    "active_users": [WINDOW_MONTH, {"interval": "1 week", **WINDOW_ODD}, {"interval": "1 month"}],
    "time_series_metrics": [
        {"granularity": "hour", **WINDOW_ODD},
        {"granularity": "day", **WINDOW_ALL, "tenant_id": "tenant_acme"},
        {"granularity": "minute", **WINDOW_DAY, "tenant_id": "tenant_globex"},
    ],
    "rate_limit_usage": [{"at": "2025-06-01 12:00:00"}, {"at": "2025-05-20 15:00:00", "tenant_id": "tenant_acme"}],
    "endpoint_performance": [WINDOW_ODD, {**WINDOW_MONTH, "tenant_id": "tenant_acme"}, {"method": "POST"}],
    "api_usage_by_tenant": [WINDOW_ALL, WINDOW_ODD],
    "user_activity": [{**WINDOW_MONTH, "tenant_id": "tenant_acme"}, WINDOW_ODD],
    "error_analysis": [WINDOW_ODD, {"tenant_id": "tenant_initech"}],
    "geographic_distribution": [WINDOW_ALL, {**WINDOW_ODD, "tenant_id": "tenant_acme"}],
    "usage_metering": [{}, {**WINDOW_ODD, "tenant_id": "tenant_acme"}],
}
_TIMES = ("start_date", "end_date", "at")


@cache
def _declared(project_dir: Path) -> dict[str, dict[str, Parameter]]:
    project = load_project(project_dir)
    return {name: declared_parameters(pipe) for name, pipe in project.endpoints.items()}


def declared(project_dir: Path, endpoint: str) -> dict[str, Parameter]:
    """The parameters `endpoint`'s pipe declares, with their types and defaults."""
    return _declared(Path(project_dir).resolve())[endpoint]


def defaults(project_dir: Path, endpoint: str) -> dict[str, str]:
    """The declared defaults of `endpoint`'s parameters, as query-string text."""
    return {name: str(p.default) for name, p in declared(project_dir, endpoint).items() if p.default is not None}


def _aligned(text: str) -> bool:
    """A time on an hour boundary, or a day's last second (an inclusive end): the shape roll-ups answer whole."""
    moment = datetime.strptime(text, _FORMAT)
    return (moment.minute, moment.second) == (0, 0) or (moment.hour, moment.minute, moment.second) == (23, 59, 59)


def distinct(params: dict, i: int) -> dict:
    """`params` as call number `i` asks them: a set whose times are all unaligned (`_aligned`) moves back `i` seconds,
    so it is a parameter set not asked before with the same shape (the same roll-ups and raw edges read); a set
    with an aligned time or none is asked as it is (moving it would change what it reads)."""
    times = [k for k in _TIMES if k in params]
    if i == 0 or not times or any(_aligned(params[k]) for k in times):
        return dict(params)
    return {
        k: (datetime.strptime(v, _FORMAT) - timedelta(seconds=i)).strftime(_FORMAT) if k in times else v
        for k, v in params.items()
    }


def cold_sets(endpoint: str, count: int, offset: int = 0) -> list[dict]:
    """`count` parameter sets for `endpoint`, the mix in turn, each moved by `distinct` (sets of different calls
    differ wherever their windows are unaligned)."""
    base = MIX[endpoint]
    return [distinct(base[k % len(base)], offset + k + 1) for k in range(count)]

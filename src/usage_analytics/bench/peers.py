"""The engines users would pick instead, answering the same questions: DuckDB in process, and a real
PostgreSQL server started from the machine's packages. The benchmark times them on the same data and
checks that their rows equal the endpoints' rows.

One SQL text per question serves both engines: it sticks to what they share (date_trunc, FILTER,
percentile_cont, DISTINCT ON), with `:name` placeholders turned into each driver's own. Rounding and
formatting happen in Python, as the endpoint's contract states them. Percentiles are exact here (the
endpoints use timing-quantile states), so they are compared within a band, not for equality.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from ..local.launcher import free_port
from .endpoints import declared
from .rawforms import where

PEER_ENDPOINTS = (
    "time_series_metrics",
    "endpoint_performance",
    "rate_limit_usage",
    "feature_usage_summary",
    "retention_cohorts",
)

# The columns the five questions read, with types both engines know (the datasources' own, mapped).
TABLES = {
    "api_logs": {
        "timestamp": "TIMESTAMP",
        "tenant_id": "VARCHAR",
        "user_id": "VARCHAR",
        "endpoint": "VARCHAR",
        "method": "VARCHAR",
        "status_code": "INTEGER",
        "response_time_ms": "BIGINT",
    },
    "tenant_rate_limits": {
        "tenant_id": "VARCHAR",
        "endpoint": "VARCHAR",
        "requests_per_minute": "BIGINT",
        "requests_per_hour": "BIGINT",
        "requests_per_day": "BIGINT",
        "updated_at": "TIMESTAMP",
    },
    "feature_events": {
        "user_id": "VARCHAR",
        "feature_id": "VARCHAR",
        "product_version": "VARCHAR",
        "timestamp": "TIMESTAMP",
        "session_id": "VARCHAR",
    },
    "events": {"user_id": "VARCHAR", "timestamp": "TIMESTAMP"},
}
INDEXES = (  # PostgreSQL: what the questions filter and group on
    "CREATE INDEX ON api_logs (tenant_id, timestamp)",
    "CREATE INDEX ON api_logs (timestamp)",
    "CREATE INDEX ON tenant_rate_limits (tenant_id, endpoint, updated_at)",
    "CREATE INDEX ON feature_events (timestamp)",
    "CREATE INDEX ON events (timestamp)",
)
_PLACEHOLDER = re.compile(r":(\w+)")


def _window(p: dict, *columns: str) -> str:
    return where(p, columns, mark=lambda name, _: f":{name}")


def _percentiles(*points: float) -> str:
    return ", ".join(
        f"percentile_cont({p}) WITHIN GROUP (ORDER BY response_time_ms) AS p{round(p * 100)}" for p in points
    )


def _sql(endpoint: str, p: dict) -> str:
    if endpoint == "time_series_metrics":
        unit = p.get("granularity", "hour")
        if unit not in ("minute", "hour", "day"):
            raise ValueError(f"granularity {unit!r}")
        return f"""
            SELECT date_trunc('{unit}', timestamp) AS period, count(*) AS n,
                count(*) FILTER (WHERE status_code >= 400) AS errors, avg(response_time_ms) AS avg_ms,
                {_percentiles(0.95, 0.99)}
            FROM api_logs WHERE {_window(p, "tenant_id", "endpoint")} GROUP BY 1 ORDER BY 1"""
    if endpoint == "endpoint_performance":
        return f"""
            SELECT endpoint, method, count(*) AS n, count(*) FILTER (WHERE status_code >= 400) AS errors,
                avg(response_time_ms) AS avg_ms, {_percentiles(0.5, 0.95, 0.99)}
            FROM api_logs WHERE {_window(p, "tenant_id", "method", "endpoint")}
            GROUP BY endpoint, method ORDER BY n DESC, endpoint, method LIMIT :limit"""
    if endpoint == "rate_limit_usage":
        filters = " AND ".join(["1 = 1"] + [f"l.{c} = :{c}" for c in ("tenant_id", "endpoint") if c in p])
        return f"""
            WITH latest AS (
                SELECT DISTINCT ON (tenant_id, endpoint) tenant_id, endpoint, requests_per_minute,
                    requests_per_hour, requests_per_day
                FROM tenant_rate_limits ORDER BY tenant_id, endpoint, updated_at DESC),
            used AS (
                SELECT tenant_id, endpoint,
                    count(*) FILTER (WHERE timestamp > :at - INTERVAL '1 minute') AS minute,
                    count(*) FILTER (WHERE timestamp > :at - INTERVAL '1 hour') AS hour, count(*) AS day
                FROM api_logs WHERE timestamp > :at - INTERVAL '1 day' AND timestamp <= :at
                GROUP BY tenant_id, endpoint)
            SELECT l.tenant_id, l.endpoint, l.requests_per_minute, l.requests_per_hour, l.requests_per_day,
                coalesce(u.minute, 0) AS minute, coalesce(u.hour, 0) AS hour, coalesce(u.day, 0) AS day
            FROM latest l LEFT JOIN used u ON u.tenant_id = l.tenant_id AND u.endpoint = l.endpoint
            WHERE {filters}"""
    if endpoint == "feature_usage_summary":
        return f"""
            SELECT feature_id, product_version, count(*) AS n, count(DISTINCT user_id) AS users,
                count(DISTINCT session_id) AS sessions, min(timestamp) AS first_usage, max(timestamp) AS last_usage
            FROM feature_events WHERE {_window(p, "feature_id", "product_version")}
            GROUP BY feature_id, product_version ORDER BY n DESC, feature_id, product_version LIMIT :limit"""
    if endpoint == "retention_cohorts":
        return f"""
            WITH weeks AS (
                SELECT DISTINCT user_id, CAST(date_trunc('week', timestamp) AS DATE) AS monday
                FROM events WHERE {_window(p)}),
            cohorts AS (SELECT user_id, min(monday) AS cohort FROM weeks GROUP BY user_id),
            sizes AS (SELECT cohort, count(*) AS size FROM cohorts GROUP BY cohort)
            SELECT c.cohort, CAST((w.monday - c.cohort) / 7 AS INTEGER) AS week_number, s.size, count(*) AS active
            FROM weeks w JOIN cohorts c ON c.user_id = w.user_id JOIN sizes s ON s.cohort = c.cohort
            WHERE (w.monday - c.cohort) < 7 * :weeks
            GROUP BY c.cohort, week_number, s.size ORDER BY c.cohort, week_number"""
    raise KeyError(endpoint)


def _typed(kind: str, raw: str):
    if kind.startswith("DateTime"):
        return datetime.fromisoformat(raw)
    if kind.startswith(("Int", "UInt")):
        return int(raw)
    return raw


def _values(endpoint: str, params: dict, project_dir: Path) -> dict:
    """The query parameters as typed values, each missing one with the default its pipe declares."""
    values: dict = {}
    for name, param in declared(project_dir, endpoint).items():
        raw = params.get(name, param.default)
        if raw is not None and name != "granularity":  # granularity is written into the SQL text
            values[name] = _typed(param.type, str(raw))
    if endpoint == "rate_limit_usage":
        values.setdefault("at", datetime.utcnow().replace(microsecond=0))  # the pipe's now()
    return values


def _fmt(value):
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _round(x: float, digits: int) -> float:
    """ClickHouse's round() of a Float64: scale, round half to even, scale back (0.025 -> 0.02)."""
    scale = 10**digits
    return round(x * scale) / scale


def _rate(part: int, whole: int) -> float:
    return _round(part / whole, 4)


def _pct(used: int, cap: int) -> float:
    return _round(100 * used / cap, 2) if cap else (float("inf") if used else float("nan"))


def _shape(endpoint: str, rows: list[tuple]) -> list[dict]:
    """Rows as the endpoint returns them: its columns, in its order, rounded as its contract says."""
    rows = [tuple(_fmt(v) for v in row) for row in rows]
    if endpoint == "time_series_metrics":
        return [
            {
                "period": period,
                "request_count": n,
                "error_count": e,
                "error_rate": _rate(e, n),
                "avg_response_time_ms": _round(avg, 2),
                "p95_response_time_ms": _round(p95, 2),
                "p99_response_time_ms": _round(p99, 2),
            }
            for period, n, e, avg, p95, p99 in rows
        ]
    if endpoint == "endpoint_performance":
        return [
            {
                "endpoint": ep,
                "method": method,
                "request_count": n,
                "avg_response_time_ms": _round(avg, 2),
                "p50_response_time_ms": _round(p50, 2),
                "p95_response_time_ms": _round(p95, 2),
                "p99_response_time_ms": _round(p99, 2),
                "success_rate": _round(1 - _rate(e, n), 4),
                "error_rate": _rate(e, n),
            }
            for ep, method, n, e, avg, p50, p95, p99 in rows
        ]
    if endpoint == "rate_limit_usage":
        out = []
        for tenant, ep, rpm, rph, rpd, minute, hour, day in rows:
            pcts = [_pct(minute, rpm), _pct(hour, rph), _pct(day, rpd)]
            out.append(
                {
                    "tenant_id": tenant,
                    "endpoint": ep,
                    "requests_per_minute": rpm,
                    "requests_per_hour": rph,
                    "requests_per_day": rpd,
                    "requests_last_minute": minute,
                    "requests_last_hour": hour,
                    "requests_last_day": day,
                    "minute_usage_pct": pcts[0],
                    "hour_usage_pct": pcts[1],
                    "day_usage_pct": pcts[2],
                    "is_limited": int(any(x >= 100 for x in pcts)),
                }
            )
        out.sort(key=lambda r: (r["tenant_id"], r["endpoint"]))
        keys = ("minute_usage_pct", "hour_usage_pct", "day_usage_pct")
        out.sort(key=lambda r: max(r[k] if r[k] == r[k] else float("-inf") for k in keys), reverse=True)
        return out
    if endpoint == "feature_usage_summary":
        names = ("feature_id", "product_version", "usage_count", "unique_users", "unique_sessions")
        return [dict(zip(names + ("first_usage", "last_usage"), row, strict=True)) for row in rows]
    names = ("cohort_week", "week_number", "cohort_size", "active_users")
    return [{**dict(zip(names, row, strict=True)), "retention_rate": _rate(row[3], row[2])} for row in rows]


class Peer:
    """An engine answering the endpoints' questions; parameters a question leaves out take the defaults that the
    pipes in `project_dir` declare."""

    name = ""
    placeholder = ""

    def __init__(self, project_dir: Path):
        self.project_dir = Path(project_dir)

    def load(self, data_dir: Path) -> None:
        raise NotImplementedError

    def _run(self, sql: str, values: dict) -> list[tuple]:
        raise NotImplementedError

    def query(self, endpoint: str, params: dict) -> list[dict]:
        sql = _sql(endpoint, params)
        values = _values(endpoint, params, self.project_dir)
        used = {name: values[name] for name in _PLACEHOLDER.findall(sql)}
        return _shape(endpoint, self._run(_PLACEHOLDER.sub(self.placeholder, sql), used))

    def close(self) -> None:
        pass


def _select_columns(table: str) -> str:
    return ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in TABLES[table].items())


class DuckDBPeer(Peer):
    name = "duckdb"
    placeholder = r"$\1"

    def __init__(self, project_dir: Path):
        import duckdb

        super().__init__(project_dir)
        self.con = duckdb.connect()

    def load(self, data_dir: Path) -> None:
        for table, columns in TABLES.items():
            spec = ", ".join(f"'{c}': '{'VARCHAR' if t == 'TIMESTAMP' else t}'" for c, t in columns.items())
            source = (
                f"read_json('{data_dir / (table + '.ndjson')}', format = 'newline_delimited', columns = {{{spec}}})"
            )
            self.con.execute(f"CREATE TABLE {table} AS SELECT {_select_columns(table)} FROM {source}")

    def _run(self, sql: str, values: dict) -> list[tuple]:
        return self.con.execute(sql, values).fetchall()

    def close(self) -> None:
        self.con.close()


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): run `make postgresql`")
    return Path(found[-1]).parent


class PostgresPeer(Peer):
    """A PostgreSQL server of its own in a temporary folder, on a unix socket, tuned for a read benchmark
    on this machine: no fsync (the data is a copy), 1 GB shared buffers, 256 MB work_mem for the sorts of
    percentile_cont and count(DISTINCT), two parallel workers per query (two cores), C collation so text
    sorts by bytes as ClickHouse sorts it."""

    name = "postgresql"
    placeholder = r"%(\1)s"

    def __init__(self, project_dir: Path):
        import psycopg

        super().__init__(project_dir)
        self.bin = postgres_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="peer-pg-"))
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        run = {"check": True, "capture_output": True}
        data = self.dir / "data"
        subprocess.run([*as_postgres, str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                        "--locale=C", "-E", "UTF8"], **run)  # fmt: skip
        options = (
            f"-k {self.dir} -p {self.port} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c shared_buffers=1GB -c work_mem=256MB -c maintenance_work_mem=1GB "
            "-c max_parallel_workers_per_gather=2 -c jit=off"
        )
        subprocess.run([*as_postgres, str(self.bin / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l",
                        str(self.dir / "log"), "start"], **run)  # fmt: skip
        self._as_postgres = as_postgres
        self.con = psycopg.connect(host=str(self.dir), port=self.port, user="postgres", dbname="postgres")
        self.con.autocommit = True

    def load(self, data_dir: Path) -> None:
        import duckdb

        with duckdb.connect() as convert:
            for table, columns in TABLES.items():
                spec = ", ".join(f"'{c}': '{'VARCHAR' if t == 'TIMESTAMP' else t}'" for c, t in columns.items())
                source = (
                    f"read_json('{data_dir / (table + '.ndjson')}', format = 'newline_delimited', columns = {{{spec}}})"
                )
                csv_path = self.dir / f"{table}.csv"
                convert.execute(f"COPY (SELECT {_select_columns(table)} FROM {source}) TO '{csv_path}' (HEADER false)")
                self.con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
                with self.con.cursor().copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy, open(csv_path, "rb") as f:
                    while block := f.read(1 << 20):
                        copy.write(block)
                csv_path.unlink()
        for statement in INDEXES:
            self.con.execute(statement)
        self.con.execute("VACUUM ANALYZE")

    def _run(self, sql: str, values: dict) -> list[tuple]:
        return self.con.execute(sql, values).fetchall()

    def close(self) -> None:
        self.con.close()
        subprocess.run(
            [*self._as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)

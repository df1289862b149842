"""Server benchmarks: start-up to healthy, Events API ingest against a raw chDB insert, endpoint latency.

Timings on shared machines are noisy, so every comparison is a ratio measured in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

from .ingest import batches

CLI = str(Path(sys.executable).parent / "usage-analytics")
BATCH_BYTES = 8 * 1024 * 1024  # what the benchmarks send per request, under the 10 MB limit


@dataclass
class RunningServer:
    proc: subprocess.Popen
    base: str
    token: str
    seconds_to_healthy: float

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def get(self, path: str, params: dict | None = None, timeout: float = 300) -> requests.Response:
        """GET `path` with the admin token; an error answer raises."""
        response = requests.get(
            f"{self.base}{path}",
            params=params or {},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )
        response.raise_for_status()
        return response


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    project: Path, data_dir: Path, port: int, timeout: float = 600, extra: tuple[str, ...] = ()
) -> RunningServer:
    started = time.perf_counter()
    args = [CLI, "local", "--project-dir", str(project), "--data-dir", str(data_dir), "--port", str(port), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if requests.get(f"{base}/v0/health", timeout=1).ok:
                elapsed = time.perf_counter() - started
                token = requests.get(f"{base}/tokens", timeout=5).json()["admin_token"]
                return RunningServer(proc, base, token, elapsed)
        except requests.ConnectionError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError("server did not become healthy")


def startup_seconds(project: Path, port: int, runs: int = 3) -> list[float]:
    """Process start to a healthy /v0/health on a fresh data dir, fixtures loaded."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as data:
            server = start_server(project, Path(data), port)
            times.append(server.seconds_to_healthy)
            server.stop()
    return times


def bodies(lines: list[bytes], max_rows: int | None = None) -> list[bytes]:
    """Request bodies cut as the Events API client cuts batches: by bytes, and by rows when asked."""
    return [b"\n".join(batch) for batch in batches(lines, max_rows or max(len(lines), 1), BATCH_BYTES)]


def _acknowledged(http: requests.Session, server: RunningServer, datasource: str, body: bytes) -> int:
    response = http.post(
        f"{server.base}/v0/events",
        params={"name": datasource, "wait": "true"},
        data=body,
        headers={"Authorization": f"Bearer {server.token}"},
    )
    response.raise_for_status()
    return response.json()["successful_rows"]


def events_api_ingest(server: RunningServer, datasource: str, lines: list[bytes]) -> dict:
    http = requests.Session()
    total_bytes = sum(len(line) + 1 for line in lines)
    started = time.perf_counter()
    ok = sum(_acknowledged(http, server, datasource, body) for body in bodies(lines))
    seconds = time.perf_counter() - started
    return {"rows": ok, "seconds": seconds, "rows_per_s": ok / seconds, "mb_per_s": total_bytes / seconds / 1e6}


def batch_latency_ms(server: RunningServer, datasource: str, lines: list[bytes], batch_rows: int) -> float:
    """Median milliseconds of one acknowledged (wait=true) batch of `batch_rows` rows."""
    http = requests.Session()
    times = []
    for body in bodies(lines, batch_rows):
        started = time.perf_counter()
        _acknowledged(http, server, datasource, body)
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


def _timed_inserts(query, table: str, lines: list[bytes]) -> dict:
    started = time.perf_counter()
    for body in bodies(lines):
        query(f"INSERT INTO {table} FORMAT JSONEachRow\n" + body.decode())
    seconds = time.perf_counter() - started
    return {"rows": len(lines), "seconds": seconds, "rows_per_s": len(lines) / seconds}


def raw_chdb_insert(datasource_file: Path, lines: list[bytes]) -> dict:
    """The floor: ClickHouse parsing the same NDJSON straight into the same table, no HTTP, no checks."""
    from chdb import session

    from .local import ddl
    from .local.engine import DATABASE
    from .local.project import load_datasource

    ds = load_datasource(datasource_file)
    with tempfile.TemporaryDirectory() as path:
        sess = session.Session(path)
        sess.query(f"CREATE DATABASE {DATABASE}")
        sess.query(ddl.create_table(ds))
        result = _timed_inserts(sess.query, ddl.table(ds.name), lines)
        sess.close()
    return result


def chdb_insert_with_views(project: Path, datasource: str, lines: list[bytes]) -> dict:
    """The same insert into the project's own tables, with the materialized views that the datasource feeds
    (the roll-ups cost what they cost on any ClickHouse), still with no HTTP and no checks."""
    from .local import ddl
    from .local.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "project"
        for folder in ("datasources", "pipes", "endpoints"):  # no fixtures: the table starts empty
            shutil.copytree(project / folder, copy / folder)
        workspace = Workspace(copy, Path(tmp) / "data")
        try:
            workspace.build()
            views = len(workspace.materializations_fed_by(workspace.datasource(datasource)))
            result = _timed_inserts(workspace.engine.query, ddl.table(datasource), lines)
        finally:
            workspace.close()
    return {**result, "materialized_views": views}


def machine() -> str:
    return f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def median(values: list[float]) -> float:
    return statistics.median(values)


def dump(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))


# ---- endpoint latency ---------------------------------------------------------------------------
WINDOW_ALL = {"start_date": "2025-03-03 00:00:00", "end_date": "2025-06-01 23:59:59"}
WINDOW_MONTH = {"start_date": "2025-05-01 00:00:00", "end_date": "2025-05-31 23:59:59"}
WINDOW_ODD = {"start_date": "2025-04-10 13:17:45", "end_date": "2025-05-20 08:03:12"}
WINDOW_DAY = {"start_date": "2025-05-13 00:00:00", "end_date": "2025-05-13 23:59:59"}

# A fixed mix of parameter sets per endpoint: different windows, tenants and filters.
MIX: dict[str, list[dict]] = {
    "feature_usage": [{}, WINDOW_MONTH, WINDOW_ODD, {"feature": "dashboard"}],
    "daily_active_users": [{"end_date": "2025-06-01 23:59:59"}, {"end_date": "2025-05-15 12:34:56", "days": "60"}],
    "user_event_activity": [{"user_id": "user_00000", "end_date": "2025-06-01 23:59:59", "days": "30"}],
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


def percentile(values: list[float], point: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(point / 100 * (len(ordered) - 1)))]


def time_calls(call, param_sets: list[dict], rounds: int) -> list[float]:
    """Milliseconds of each call, over `rounds` passes of the parameter sets (after one warm-up pass)."""
    for params in param_sets:
        call(params)
    times = []
    for _ in range(rounds):
        for params in param_sets:
            started = time.perf_counter()
            call(params)
            times.append((time.perf_counter() - started) * 1000)
    return times


class EndpointCaller:
    """Calls one endpoint over its own connection, and keeps the `engine` time of each answer's Server-Timing
    header: the client's time minus it is what the server itself cost on that very call."""

    def __init__(self, server: RunningServer, name: str):
        self.url = f"{server.base}/v0/pipes/{name}.json"
        self.http = requests.Session()
        self.headers = {"Authorization": f"Bearer {server.token}"}
        self.engine_ms: list[float] = []

    def __call__(self, params: dict) -> None:
        response = self.http.get(self.url, params=params, headers=self.headers, timeout=120)
        response.raise_for_status()
        timings = dict(part.strip().split(";dur=") for part in response.headers["Server-Timing"].split(","))
        self.engine_ms.append(float(timings["engine"]))


def sql_caller(server: RunningServer, to_sql):
    http = requests.Session()
    headers = {"Authorization": f"Bearer {server.token}"}

    def call(params: dict) -> None:
        response = http.get(f"{server.base}/v0/sql", params={"q": to_sql(params)}, headers=headers, timeout=300)
        response.raise_for_status()

    return call


def time_calls_concurrently(make_call, param_sets: list[dict], rounds: int, clients: int) -> list[float]:
    """Milliseconds of each call with `clients` callers at once, each with its own connection."""
    from concurrent.futures import ThreadPoolExecutor

    def one_client(_: int) -> list[float]:
        return time_calls(make_call(), param_sets, rounds)

    with ThreadPoolExecutor(clients) as pool:
        return [ms for times in pool.map(one_client, range(clients)) for ms in times]

"""Server benchmarks: start-up to healthy, Events API ingest against a raw chDB insert, endpoint latency.

Timings on shared machines are noisy, so every comparison is a ratio measured in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

CLI = str(Path(sys.executable).parent / "usage-analytics")


@dataclass
class RunningServer:
    proc: subprocess.Popen
    base: str
    token: str
    seconds_to_healthy: float

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def start_server(project: Path, data_dir: Path, port: int, timeout: float = 600) -> RunningServer:
    started = time.perf_counter()
    args = [CLI, "local", "--project-dir", str(project), "--data-dir", str(data_dir), "--port", str(port)]
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


def batches(lines: list[bytes], max_bytes: int = 8 * 1024 * 1024) -> list[bytes]:
    out, current, size = [], [], 0
    for line in lines:
        if current and size + len(line) + 1 > max_bytes:
            out.append(b"\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        out.append(b"\n".join(current))
    return out


def events_api_ingest(server: RunningServer, datasource: str, lines: list[bytes]) -> dict:
    http = requests.Session()
    headers = {"Authorization": f"Bearer {server.token}"}
    total_bytes = sum(len(line) + 1 for line in lines)
    started = time.perf_counter()
    ok = 0
    for body in batches(lines):
        response = http.post(
            f"{server.base}/v0/events", params={"name": datasource, "wait": "true"}, data=body, headers=headers
        )
        response.raise_for_status()
        ok += response.json()["successful_rows"]
    seconds = time.perf_counter() - started
    return {"rows": ok, "seconds": seconds, "rows_per_s": ok / seconds, "mb_per_s": total_bytes / seconds / 1e6}


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
        started = time.perf_counter()
        for body in batches(lines):
            sess.query(f"INSERT INTO {ddl.table(ds.name)} FORMAT JSONEachRow\n" + body.decode())
        seconds = time.perf_counter() - started
        sess.close()
    return {"rows": len(lines), "seconds": seconds, "rows_per_s": len(lines) / seconds}


def machine() -> str:
    return f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def median(values: list[float]) -> float:
    return statistics.median(values)


def dump(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))

"""Ingest, measured as users send it, against chDB inserting the same rows with no HTTP and no checks.

Single stream: one client posting uncompressed NDJSON batches of BATCH_ROWS rows with `wait=true`, one after the
other (what `curl` and most SDKs do). The project's client (usage_analytics.ingest.EventsClient, its defaults:
gzip, two requests in flight) sends the same rows. Both are ratios to chDB inserting the same batches into the
same table with the same materialized views (what any ClickHouse pays), and into the bare table.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import requests

from ..local.launcher import Connection

BATCH_ROWS = 20_000


def copy_datafiles(project_dir: Path, dest: Path) -> Path:
    """`project_dir`'s datafiles (every .datasource and .pipe its loader reads) in `dest`, at the same relative
    paths, and nothing else: no fixtures, so every table starts empty."""
    from ..local.project import load_project

    project = load_project(Path(project_dir))
    root = project.root
    for item in [*project.datasources.values(), *project.pipes.values()]:
        source = Path(item.path)
        target = dest / source.resolve().relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return dest


def bodies(lines: list[bytes], rows: int = BATCH_ROWS) -> list[bytes]:
    return [b"\n".join(lines[i : i + rows]) for i in range(0, len(lines), rows)]


def _timed_inserts(query, table: str, batches: list[bytes]) -> dict:
    rows = sum(body.count(b"\n") + 1 for body in batches)
    started = time.perf_counter()
    for body in batches:
        query(f"INSERT INTO {table} FORMAT JSONEachRow\n" + body.decode())
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def chdb_bare_table(project_dir: Path, datasource: str, batches: list[bytes]) -> dict:
    """The floor: ClickHouse parsing the same NDJSON straight into the same table (same columns, engine and keys),
    no materialized views, no HTTP, no checks."""
    from chdb import session

    from ..local import ddl
    from ..local.engine import DATABASE
    from ..local.project import load_project

    ds = load_project(Path(project_dir)).datasources[datasource]
    with tempfile.TemporaryDirectory(prefix="bench-chdb-") as path:
        sess = session.Session(path)
        try:
            sess.query(f"CREATE DATABASE {DATABASE}")
            sess.query(ddl.create_table(ds))
            return _timed_inserts(sess.query, ddl.table(ds.name), batches)
        finally:
            sess.close()


def chdb_with_views(project_dir: Path, datasource: str, batches: list[bytes]) -> dict:
    """The same inserts into the project's own tables, built by the server's own code, with the materialized
    views the datasource feeds (the roll-ups cost what they cost on any ClickHouse), still no HTTP, no checks."""
    from ..local import ddl
    from ..local.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="bench-views-") as tmp:
        workspace = Workspace(copy_datafiles(project_dir, Path(tmp) / "project"), Path(tmp) / "data")
        try:
            workspace.build()
            views = len(workspace.materializations_fed_by(workspace.datasource(datasource)))
            result = _timed_inserts(workspace.engine.query, ddl.table(datasource), batches)
        finally:
            workspace.close()
    return {**result, "materialized_views": views}


def single_stream(server: Connection, datasource: str, batches: list[bytes]) -> dict:
    """One client, one request at a time: each batch posted uncompressed with `wait=true`."""
    http = requests.Session()
    headers = {"Authorization": f"Bearer {server.token}"}
    params = {"name": datasource, "wait": "true"}
    total_bytes = sum(len(body) + 1 for body in batches)
    ok = 0
    started = time.perf_counter()
    for body in batches:
        response = http.post(f"{server.base_url}/v0/events", params=params, data=body, headers=headers, timeout=600)
        response.raise_for_status()
        ok += response.json()["successful_rows"]
    seconds = time.perf_counter() - started
    return {"rows": ok, "seconds": seconds, "rows_per_s": ok / seconds, "mb_per_s": total_bytes / seconds / 1e6}


def project_client(server: Connection, datasource: str, lines: list[bytes]) -> dict:
    """The project's Events API client with its defaults."""
    from ..ingest import EventsClient

    client = EventsClient(server.base_url, server.token)
    total_bytes = sum(len(line) + 1 for line in lines)
    started = time.perf_counter()
    totals = client.send(datasource, lines)
    seconds = time.perf_counter() - started
    return {
        "rows": totals.acknowledged,
        "failed": totals.failed,
        "seconds": seconds,
        "rows_per_s": totals.acknowledged / seconds,
        "mb_per_s": total_bytes / seconds / 1e6,
    }

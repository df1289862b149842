"""Tinybird's JSON shapes of what the API describes: import and delete jobs, datasources, pipes and their nodes.

Times are written as Tinybird writes them, `YYYY-MM-DD HH:MM:SS.ffffff` in UTC: `tb datasource ls` and
`tb endpoint ls` cut the last seven characters off for their tables. A datasource or pipe is as old as its
datafile (the file's modification time), so the answer is the same on every call and changes when the file does.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime

from .. import ddl
from ..project import Datasource, Node, Pipe
from ..workspace import ImportResult, Workspace

_STARTED = time.time()  # the time of a datafile that is no longer on disk


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _datafile_time(path: str) -> str:
    try:
        return timestamp(os.stat(path).st_mtime)
    except OSError:
        return timestamp(_STARTED)


def _stable_id(*names: str) -> str:
    """An id in Tinybird's form (`t_` and 32 hex digits) that stays the same across calls and restarts."""
    return "t_" + uuid.uuid5(uuid.NAMESPACE_URL, "/".join(names)).hex


def job(result: ImportResult, base_url: str) -> dict:
    """A job as `GET /v0/jobs/<id>` answers it, and as the import or delete that ran it answers. A job here runs
    within its request, so it is done once it exists; no `error` key at all, as the `tb` CLI fails an import on
    the presence of one."""
    when = timestamp(result.created_at)
    shape = {
        "id": result.id,
        "job_id": result.id,
        "job_url": f"{base_url}/v0/jobs/{result.id}",
        "kind": result.kind,
        "status": "done",
        "created_at": when,
        "updated_at": when,
        "datasource": {"id": _stable_id("datasource", result.datasource.name), "name": result.datasource.name},
    }
    if result.kind == "delete_data":
        return {**shape, "delete_condition": result.condition, "rows_affected": result.rows}
    if result.kind == "copy" and result.pipe is not None:
        # the copy job of https://www.tinybird.co/docs/api-reference/pipe-api/copy-pipes-api; its query's id is the
        # job's own (ClickHouse's id of a query is not kept here)
        return {
            **shape,
            "pipe_id": _stable_id("pipe", result.pipe.name),
            "pipe_name": result.pipe.name,
            "query_id": result.id,
            "mode": result.mode,
            "statistics": {"row_count": result.rows},
            "dependent_datasources": {},
        }
    # one block for the whole file: `tb datasource append` adds up `lines` and `quarantine` over the blocks
    block = {"lines": result.rows, "quarantine": result.quarantined, "bytes": result.bytes, "invalid_lines": 0}
    return {
        **shape,
        "import_id": result.id,
        "mode": "replace" if result.kind == "replace" else "append",
        "replace_condition": result.condition,
        "statistics": {"bytes": result.bytes, "row_count": result.rows},
        "quarantine_rows": result.quarantined,
        "invalid_lines": 0,
        "blocks": [{"block_id": result.id, "process_return": [block]}],
    }


def job_summary(result: ImportResult, base_url: str) -> dict:
    """A job as `GET /v0/jobs` lists it."""
    full = job(result, base_url)
    keys = ("id", "kind", "status", "created_at", "updated_at", "job_url", "datasource", "pipe_id", "pipe_name")
    return {key: full[key] for key in keys if key in full}


def datasource(ws: Workspace, ds: Datasource) -> dict:
    rows = ws.engine.row_count(ds.name, ws.database)
    stored = ws.engine.scalar(
        "SELECT total_bytes FROM system.tables WHERE database = {db:String} AND name = {name:String}",
        {"db": ws.database, "name": ds.name},
    )
    size = int(stored or 0)
    when = _datafile_time(ds.path)
    return {
        "id": _stable_id("datasource", ds.name),
        "name": ds.name,
        "description": ds.description,
        # Tinybird's name for a datasource fed by the Events and Data Sources APIs: by JSONPaths, or by position
        "type": "ndjson" if any(c.jsonpath for c in ds.columns) else "csv",
        "created_at": when,
        "updated_at": when,
        "engine": {"engine": ds.engine, **ds.engine_args},
        "columns": [{"name": c.name, "type": c.sql_type, "jsonpath": c.jsonpath} for c in ds.columns],
        "stats": {
            "row_count": rows,
            "bytes": size,
            "quarantine_rows": ws.engine.row_count(ds.name + ddl.QUARANTINE_SUFFIX, ws.database),
        },
        # Tinybird's current name for `stats`: `tb build` reads it to load a fixture only into an empty datasource
        "statistics": {"row_count": rows, "bytes": size},
    }


def _node(pipe: Pipe, node: Node) -> dict:
    return {
        "id": _stable_id("pipe", pipe.name, node.name),
        "name": node.name,
        "description": node.description,
        "sql": node.sql,
        # what `tb test run` reads: the first node that is not "standard" is the one it queries
        "node_type": node.kind or "standard",
        "materialized": node.target if node.kind == "materialized" else None,
    }


def pipe(p: Pipe, base_url: str) -> dict:
    endpoint = p.output_node if p.kind == "endpoint" else None
    when = _datafile_time(p.path)
    return {
        "id": _stable_id("pipe", p.name),
        "name": p.name,
        "description": p.description,
        "type": p.kind or "default",
        "endpoint": endpoint.name if endpoint else None,
        "url": f"{base_url}/v0/pipes/{p.name}.json" if endpoint else None,
        "created_at": when,
        "updated_at": when,
        "nodes": [_node(p, n) for n in p.nodes],
        **(_copy(p.output_node) if p.kind == "copy" else {}),
    }


def _copy(node: Node) -> dict:
    """A copy pipe's own fields, as Tinybird's pipe objects carry them (`schedule.status` is `running` while a cron
    schedule runs it)."""
    cron = node.copy_schedule if node.copy_schedule and node.copy_schedule != "@on-demand" else None
    return {
        "copy_node": node.name,
        "copy_mode": node.copy_mode or "append",
        "copy_target_datasource": node.target,
        "schedule": {"cron": cron, "status": "running" if cron else "shutdown"},
    }


def only(shape: dict, attrs: str) -> dict:
    """`shape` with just the comma-separated `attrs` (Tinybird's `attrs=` and `node_attrs=`); all when empty."""
    wanted = {a.strip() for a in attrs.split(",") if a.strip()}
    return {k: v for k, v in shape.items() if k in wanted} if wanted else shape

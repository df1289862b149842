"""A Tinybird workspace on chDB: builds a project into tables and views, ingests rows, answers pipes.

A build is a deployment: it compares each datasource with what the data dir holds and creates, extends
or (when empty) recreates tables; a change that would lose rows is refused before anything is touched.
Materialized views are recreated on every build and backfill a target that the build created.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import ddl
from .auth import TokenStore
from .engine import DATABASE, Engine, EngineError
from .ingest import IngestResult, ingest_lines, split_lines
from .pipes import PipeRenderer, RequestError, bad_request
from .project import Datasource, Node, Pipe, Project, load_project

FIXTURE_CHUNK_LINES = 200_000
_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_READ_STATEMENT = re.compile(r"^\s*(\(\s*)*(SELECT|WITH)\b", re.IGNORECASE)


class BuildError(Exception):
    """A build refused as a whole; nothing was changed."""


@dataclass
class BuildReport:
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)


class Workspace:
    def __init__(self, project_dir: Path, data_dir: Path, fsync: bool = False):
        self.fsync = fsync  # survive power loss too: fsync every inserted part and its directory
        self.project_dir = Path(project_dir).resolve()
        self.data_dir = Path(data_dir).resolve()
        self.engine = Engine(self.data_dir)
        self.tokens = TokenStore(self.data_dir)
        self.project = Project(root=self.project_dir)
        self._renderers: dict[str, PipeRenderer] = {}
        self._state_path = self.data_dir / "workspace.json"
        self._build_lock = threading.Lock()

    # ---- build -------------------------------------------------------------------------------------
    def _stored_signatures(self) -> dict:
        return json.loads(self._state_path.read_text()) if self._state_path.exists() else {}

    def _plan(self, project: Project, stored: dict) -> dict[str, str]:
        """What each datasource needs: create, keep, extend (add columns) or recreate (it is empty)."""
        plan, problems = {}, []
        for name, ds in project.datasources.items():
            wanted, old = ddl.signature(ds), stored.get(name)
            if not self.engine.table_exists(name):
                plan[name] = "create"
            elif old is None or old == wanted:
                plan[name] = "keep" if old == wanted else "adopt"
            elif (rows := self.engine.row_count(name)) == 0:
                plan[name] = "recreate"
            elif old["engine"] == wanted["engine"] and wanted["columns"][: len(old["columns"])] == old["columns"]:
                plan[name] = "extend"
            else:
                changed = "engine or keys" if old["engine"] != wanted["engine"] else "existing columns"
                problems.append(
                    f"datasource {name}: the change to its {changed} is incompatible with the {rows} rows it "
                    "holds; only new columns at the end can be added to a datasource with data "
                    "(truncate it first, or revert the change)"
                )
        if problems:
            raise BuildError("\n".join(problems))
        return plan

    def build(self) -> BuildReport:
        with self._build_lock:
            project = load_project(self.project_dir)
            stored = self._stored_signatures()
            plan = self._plan(project, stored)
            report = BuildReport()
            self._drop_materialized_views()
            fresh = set()
            for name, action in plan.items():
                try:
                    self._apply(project.datasources[name], action, stored.get(name))
                except EngineError as exc:
                    raise BuildError(f"datasource {name}: {exc}") from None
                report.add(f"datasource {name}: {action}")
                if action in ("create", "recreate"):
                    fresh.add(name)
            self._save_signatures(project)
            self._apply_fsync(project)
            self.project = project
            self._renderers = {name: PipeRenderer(p, self._resolve_table) for name, p in project.pipes.items()}
            for pipe in project.materializations.values():
                try:
                    report.add(self._create_materialized_view(pipe, backfill=pipe.output_node.target in fresh))
                except (EngineError, RequestError) as exc:
                    raise BuildError(f"materialization {pipe.name}: {exc}") from None
            self.tokens.sync(project)
            for pipe in project.endpoints:
                report.add(f"endpoint {pipe}: /v0/pipes/{pipe}.json")
            for name, ds in project.datasources.items():
                fixture = project.fixture_for(name)
                if fixture is not None and self.engine.row_count(name) == 0:
                    result = self.ingest_file(ds, fixture)
                    report.add(
                        f"datasource {name}: loaded {result.successful_rows} rows from {fixture.name}"
                        + (f" ({result.quarantined_rows} quarantined)" if result.quarantined_rows else "")
                    )
            return report

    def _apply(self, ds: Datasource, action: str, old: dict | None) -> None:
        quarantine = ds.name + ddl.QUARANTINE_SUFFIX
        if action == "recreate":
            self.engine.query(f"DROP TABLE {ddl.table(ds.name)}")
            self.engine.query(f"DROP TABLE IF EXISTS {ddl.table(quarantine)}")
        if action in ("create", "recreate"):
            self.engine.query(ddl.create_table(ds))
        if action == "extend":
            for column in ds.columns[len(old["columns"]) :]:
                self.engine.query(f"ALTER TABLE {ddl.table(ds.name)} ADD COLUMN {ddl.column_sql(column)}")
                self.engine.query(
                    f"ALTER TABLE {ddl.table(quarantine)} ADD COLUMN IF NOT EXISTS `{column.name}` Nullable(String)"
                )
        self.engine.query(ddl.create_quarantine(ds))

    def _apply_fsync(self, project: Project) -> None:
        value = int(self.fsync)
        for name, ds in project.datasources.items():
            if "MergeTree" in ds.engine:
                self.engine.query(
                    f"ALTER TABLE {ddl.table(name)} MODIFY SETTING "
                    f"fsync_after_insert = {value}, fsync_part_directory = {value}"
                )

    def _save_signatures(self, project: Project) -> None:
        state = self._stored_signatures()
        state.update({name: ddl.signature(ds) for name, ds in project.datasources.items()})
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_path)

    def _drop_materialized_views(self) -> None:
        views = self.engine.rows(
            "SELECT name FROM system.tables WHERE database = {db:String} AND engine = 'MaterializedView'",
            {"db": DATABASE},
        )
        for view in views:
            self.engine.query(f"DROP VIEW {ddl.table(view['name'])}")

    def _create_materialized_view(self, pipe, backfill: bool) -> str:
        node = pipe.output_node
        select = self._renderers[pipe.name].render({}, node.name)
        self.engine.query(ddl.create_materialized_view(pipe.name, node.name, node.target, select))
        if backfill:
            self.engine.query(f"INSERT INTO {ddl.table(node.target)} {select}")
            return f"materialization {pipe.name} -> {node.target}: created, backfilled"
        return f"materialization {pipe.name} -> {node.target}: created"

    def _resolve_table(self, name: str, values: dict) -> tuple[str, str] | None:
        base = name.removesuffix(ddl.QUARANTINE_SUFFIX)
        if name in self.project.datasources or base in self.project.datasources:
            return (DATABASE, name)
        renderer = self._renderers.get(name)
        if renderer is not None:
            return ("", f"({renderer.render(values)})")
        return None

    # ---- data in ----------------------------------------------------------------------------------
    def datasource(self, name: str | None) -> Datasource:
        if not name:
            raise bad_request("The 'name' parameter is required: the datasource to append to")
        ds = self.project.datasources.get(name)
        if ds is None:
            raise RequestError(404, f"Data Source '{name}' not found")
        return ds

    def ingest(self, ds: Datasource, body: bytes) -> IngestResult:
        return ingest_lines(self.engine, ds, split_lines(body))

    def ingest_file(self, ds: Datasource, path: Path) -> IngestResult:
        """Stream an NDJSON file in chunks, so a file of any size loads in bounded memory."""
        ok = bad = 0

        def flush(chunk: list[bytes]) -> None:
            nonlocal ok, bad
            result = ingest_lines(self.engine, ds, chunk)
            ok, bad = ok + result.successful_rows, bad + result.quarantined_rows

        chunk: list[bytes] = []
        with open(path, "rb") as handle:
            for line in handle:
                line = line.rstrip(b"\r\n")
                if line.strip():
                    chunk.append(line)
                if len(chunk) >= FIXTURE_CHUNK_LINES:
                    flush(chunk)
                    chunk = []
        if chunk:
            flush(chunk)
        return IngestResult(ok, bad, "fixtures")

    def truncate(self, ds: Datasource) -> None:
        """Empty a datasource and its quarantine; materialized targets keep what they hold, as in Tinybird."""
        self.engine.query(f"TRUNCATE TABLE {ddl.table(ds.name)}")
        self.engine.query(f"TRUNCATE TABLE IF EXISTS {ddl.table(ds.name + ddl.QUARANTINE_SUFFIX)}")

    def datasource_info(self, ds: Datasource) -> dict:
        return {
            "name": ds.name,
            "description": ds.description,
            "engine": {"engine": ds.engine, **ds.engine_args},
            "columns": [{"name": c.name, "type": c.sql_type, "jsonpath": c.jsonpath} for c in ds.columns],
            "stats": {
                "row_count": self.engine.row_count(ds.name),
                "quarantine_rows": self.engine.row_count(ds.name + ddl.QUARANTINE_SUFFIX),
            },
        }

    def datasources_info(self) -> list[dict]:
        return [self.datasource_info(ds) for ds in self.project.datasources.values()]

    # ---- data out ---------------------------------------------------------------------------------
    def endpoint(self, name: str) -> PipeRenderer:
        renderer = self._renderers.get(name)
        if renderer is None or renderer.pipe.kind != "endpoint":
            raise RequestError(404, f"The pipe '{name}' does not exist or is not published as an endpoint")
        return renderer

    def run_read_query(self, sql: str, fmt: str) -> bytes:
        try:
            return self.engine.query(sql, fmt, readonly=True)
        except EngineError as exc:
            raise bad_request(f"[Error] {exc}") from None

    def sql_query(self, q: str) -> tuple[bytes, str]:
        """An ad-hoc read over datasources and pipes (`/v0/sql`); FORMAT at the end picks the output."""
        if not q or not q.strip():
            raise bad_request("The 'q' parameter is required: a SELECT query")
        fmt = "TabSeparated"
        match = _FORMAT_CLAUSE.search(q)
        if match:
            fmt, q = match.group(1), q[: match.start()]
        if not _READ_STATEMENT.match(q):
            raise bad_request("Only SELECT queries are supported in /v0/sql")
        select = PipeRenderer(_adhoc_pipe(q), self._resolve_table).render({})
        return self.run_read_query(select, fmt), fmt

    def close(self) -> None:
        self.engine.close()


def _adhoc_pipe(sql: str) -> Pipe:
    """A `/v0/sql` query as a one-node pipe, so it resolves datasources and pipes like any endpoint."""
    return Pipe(name="query", nodes=(Node(name="query", sql=sql),))

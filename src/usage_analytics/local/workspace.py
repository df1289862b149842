"""A Tinybird workspace on chDB: builds a project into tables and views, ingests rows, answers pipes.

What a build does to the tables (and what it reports as changed) is build.py's; the workspace then serves the
project it built: its pipes, tokens and fixtures.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tinybird.sql_toolset import sql_get_used_tables

from . import ddl, formats, sqlcheck
from .auth import TokenStore
from .build import Builder, BuildReport, State, read_project
from .engine import DATABASE, Engine, EngineError
from .errors import NotFound, RequestError, RequestTimeout, ServiceUnavailable, bad_request
from .gate import DatasourceGate
from .ingest import IngestResult, ingest_lines, quarantine_rows
from .lines import split_lines
from .pipes import GENERATOR_TABLES, PipeRenderer, with_hints
from .project import Datasource, Node, Pipe, Project
from .rendercache import RenderCache
from .resultcache import ReadCache, shared_cache
from .rewrite import SnapshotLock, shadow_table, swap_in
from .secrets import SecretStore
from .settings import DEFAULTS, ServerSettings

_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_READ_STATEMENT = re.compile(r"^\s*(\(\s*)*(SELECT|WITH)\b", re.IGNORECASE)
_QUERY_NODE = "/v0/sql"  # the node a `/v0/sql` query becomes: no datafile's node can have this name


@dataclass
class ImportResult:
    """One Data Sources API operation (an import or delete job), or a copy pipe's run; http/shapes.py gives its JSON."""

    kind: str  # import | replace | delete_data | copy
    datasource: Datasource
    pipe: Pipe | None = None  # a copy's pipe, whose COPY_MODE is `mode`
    mode: str = ""
    rows: int = 0
    quarantined: int = 0
    bytes: int = 0
    condition: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: float = field(default_factory=time.time)  # epoch seconds


class Workspace:
    """One Tinybird workspace: a chDB database of tables and views built from a project folder, its tokens and jobs.

    Several share one Engine (chDB allows one data path per process); `state_dir` holds this one's tokens and
    build state (the data dir itself for the workspace `--project-dir` builds).
    """

    def __init__(
        self,
        project_dir: Path,
        data_dir: Path,
        settings: ServerSettings = DEFAULTS,
        engine: Engine | None = None,
        database: str = DATABASE,
        state_dir: Path | None = None,
    ):
        self.settings = settings
        self.database = database
        self.name = Path(project_dir).name  # the registry names workspaces (workspaces.py)
        self._gates: dict[str, DatasourceGate] = {}
        self._gates_lock = threading.Lock()
        self.jobs: OrderedDict[str, ImportResult] = OrderedDict()  # the latest jobs, for /v0/jobs/<id>
        self.project_dir = Path(project_dir).resolve()
        self.data_dir = Path(data_dir).resolve()
        self._owns_engine = engine is None
        self.engine = engine or Engine(self.data_dir, settings)
        self.engine.query(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        self.state_dir = Path(state_dir or self.data_dir)
        self.snapshot = SnapshotLock()  # reads share it; a replace or delete swaps its tables in under it alone
        self.tokens = TokenStore(self.state_dir)
        self.secrets = SecretStore(self.state_dir)
        self.project = Project(root=self.project_dir)
        self._renderers: dict[str, PipeRenderer] = {}
        self._render_cache = RenderCache(settings.render_cache_bytes)  # all pipes' rendered SQL, in bytes
        results = shared_cache(self.engine, settings)  # answers kept between writes
        self.reads = ReadCache(results, database, lambda: self.project.datasources, self._targets_fed_by)
        self._builder = Builder(self.engine, database, settings, self.state_dir / "workspace.json")
        self.build_lock = threading.RLock()  # held by a build, and by whoever writes the folder it builds from

    # ---- build -------------------------------------------------------------------------------------
    def build(self, project_dir: Path | None = None) -> BuildReport:
        """Build the project in `project_dir` (by default the workspace's own folder: `--project-dir` for the
        first workspace); from then on the workspace serves that project, and loads its fixtures into empty
        datasources."""
        with self.build_lock, self.reads.rebuilding():
            project = read_project(Path(project_dir or self.project_dir))
            report = self._builder.apply_tables(project)
            self.project = project
            self._renderers = {
                name: PipeRenderer(p, self._resolve_table, self._render_cache, self.secrets.names, (self.database,))
                for name, p in project.pipes.items()
            }
            self._builder.create_views(project, self._materialized_select, report)
            self.tokens.sync(project)
            for pipe in project.endpoints:
                report.add(f"endpoint {pipe}: /v0/pipes/{pipe}.json")
            for name, ds in project.datasources.items():
                fixture = project.fixture_for(name)
                if fixture is not None and self.engine.row_count(name, self.database) == 0:
                    load = self.ingest_sql_fixture if fixture.suffix == ".sql" else self.ingest_file
                    result = load(ds, fixture)
                    report.add(
                        f"datasource {name}: loaded {result.successful_rows} rows from {fixture.name}"
                        + (f" ({result.quarantined_rows} quarantined)" if result.quarantined_rows else "")
                    )
            return report

    def _resolve_table(self, name: str, values: dict) -> tuple[str, str] | None:
        base = name.removesuffix(ddl.QUARANTINE_SUFFIX)
        if name in self.project.datasources or base in self.project.datasources:
            return (self.database, name)
        renderer = self._renderers.get(name)
        if renderer is not None:
            # its SQL as a subquery, without its query hints: those of the query that reads it apply
            return ("", f"({renderer.render(values, hints=False)})")
        return None

    # ---- deployments: hooks for staging.py, which builds a copy beside this database and swaps it in ------------
    def staging_database(self, deployment_id: str) -> str:
        """Where deployment `deployment_id` is staged (`drop` removes these with the workspace)."""
        return f"{self.database}__d{deployment_id}"

    def hold_tables(self, state: State) -> None:
        """Record that the database holds tables with `state`'s signatures (put there by a deployment, not by a
        build), so that the next build plans from them."""
        state.save(self._builder.state_path)

    @contextmanager
    def writes_held(self) -> Iterator[None]:
        """No build and no write to any datasource until the block ends (appends wait, as for a replace): the rows a
        promotion carries over are then all the rows there are."""
        with self.build_lock, ExitStack() as held:
            for name in sorted(self.project.datasources):
                held.enter_context(self.gate(self.project.datasources[name]).exclusive())
            yield

    def adopt(self, folder: Path, project: Project, move_tables: Callable[[], None]) -> None:
        """Serve `project` (the datafiles in `folder`) from the tables `move_tables` puts into this database, in one
        step that reads see whole. The caller holds `writes_held()`; the tables come with their rows and `project`'s
        signatures, so the build keeps every one and backfills nothing."""
        with self.build_lock, self.snapshot.publish():
            move_tables()
            self.hold_tables(State.of(project))
            self.build(folder)

    # ---- data in ----------------------------------------------------------------------------------
    def datasource(self, name: str | None) -> Datasource:
        if not name:
            raise bad_request("The 'name' parameter is required: the datasource to append to")
        ds = self.project.datasources.get(name)
        if ds is None:
            raise NotFound(f"Data Source '{name}' not found")
        return ds

    def gate(self, ds: Datasource) -> DatasourceGate:
        with self._gates_lock:
            if ds.name not in self._gates:
                self._gates[ds.name] = DatasourceGate(ds.name, self.settings.max_pending_ingests)
            return self._gates[ds.name]

    def ingest(self, ds: Datasource, body: bytes) -> IngestResult:
        with self.reads.writing(ds.name):
            return ingest_lines(self.engine, ds, split_lines(body), database=self.database)

    def ingest_sql_fixture(self, ds: Datasource, path: Path) -> IngestResult:
        """The rows of a fixture's SELECT, as `tb build` loads them: run as `/v0/sql` runs it (read-only, checked),
        then appended as NDJSON, so a row that does not fit the schema is quarantined as it would be there."""
        body, _ = self.sql_query(path.read_text().strip().rstrip(";") + " FORMAT JSONEachRow")
        with self.reads.writing(ds.name):
            return ingest_lines(self.engine, ds, split_lines(body), import_id="fixtures", database=self.database)

    def ingest_file(self, ds: Datasource, path: Path) -> IngestResult:
        """Stream an NDJSON file in chunks, so a file of any size loads in bounded memory."""
        ok = bad = 0
        with self.reads.writing(ds.name), open(path, "rb") as handle:
            for chunk in formats.chunks("ndjson", handle, ds, {}):
                result = ingest_lines(self.engine, ds, chunk.lines, database=self.database)
                ok, bad = ok + result.successful_rows, bad + result.quarantined_rows
        return IngestResult(ok, bad, "fixtures")

    def import_file(
        self,
        ds: Datasource,
        fmt: str,
        stream: BinaryIO,
        mode: str = "append",
        condition: str | None = None,
        dialect: dict[str, str] | None = None,
    ) -> ImportResult:
        """The Data Sources API: append a file, or replace all rows (or those matching `condition`) with it.

        The file is parsed into a staging table first, so it lands whole or not at all; rows that do not fit
        go to quarantine under this import's id (removed again if the import fails). A replace then rebuilds
        the roll-ups fed by the datasource, so they agree with it to the last row.
        """
        if mode not in ("append", "replace"):
            raise bad_request(f"Unknown mode '{mode}': use append or replace (datasources are created by a build)")
        if condition and mode != "replace":
            raise bad_request("replace_condition applies only to mode=replace; an append adds every row of the file")
        if condition:
            sqlcheck.check_condition(condition, ds.name, "replace_condition", self.database)
        result = ImportResult("replace" if mode == "replace" else "import", ds, condition=condition or None)
        view = formats.positional(ds) if fmt == "csv" else ds
        staging = self._staging_table(ds)
        try:
            for chunk in formats.chunks(fmt, stream, ds, dialect or {}, self.settings):
                done = ingest_lines(
                    self.engine,
                    view,
                    chunk.lines,
                    into=self._table(staging),
                    import_id=result.id,
                    database=self.database,
                )
                if chunk.rejected:
                    quarantine_rows(self.engine, ds, chunk.rejected, result.id, self.database)
                result.rows += done.successful_rows
                result.quarantined += done.quarantined_rows + len(chunk.rejected)
                result.bytes += sum(len(line) for line in chunk.lines)
            with self.gate(ds).exclusive():
                if mode == "append":
                    self.engine.query(f"INSERT INTO {self._table(ds.name)} SELECT * FROM {self._table(staging)}")
                elif result.condition:
                    # the file's rows outside the condition are left out, as in Tinybird
                    result.rows = self._count_where(staging, result.condition, "replace_condition")
                    self._rewrite(ds, result.condition, add_from=staging)
                else:
                    swap_in(self.engine, self.snapshot, ds.name, staging, self._rollups_of(ds), self.database)
                return self._remember(result)
        except BaseException:
            self.engine.query(
                f"ALTER TABLE {self._table(ds.name + ddl.QUARANTINE_SUFFIX)} DELETE WHERE c__import_id = "
                f"{{id:String}} SETTINGS mutations_sync = 2",
                params={"id": result.id},
            )
            raise
        finally:
            self.reads.written(ds.name)
            self.engine.query(f"DROP TABLE IF EXISTS {self._table(staging)}")

    def delete_rows(self, ds: Datasource, condition: str, dry_run: bool = False) -> ImportResult | int:
        """Delete the rows matching `condition` (or count them, on a dry run); roll-ups are rebuilt to match."""
        if not condition or not condition.strip():
            raise bad_request("The 'delete_condition' parameter is required: a SQL condition on the datasource")
        sqlcheck.check_condition(condition, ds.name, "delete_condition", self.database)
        if dry_run:
            return self._count_where(ds.name, condition, "delete_condition")
        with self.gate(ds).exclusive(), self.reads.writing(ds.name):
            matching = self._rewrite(ds, condition)
        return self._remember(ImportResult("delete_data", ds, rows=matching, condition=condition))

    def truncate(self, ds: Datasource) -> None:
        """Empty a datasource and its quarantine; materialized targets keep what they hold, as in Tinybird."""
        with self.gate(ds).exclusive(), self.reads.writing(ds.name):
            self.engine.query(f"TRUNCATE TABLE {self._table(ds.name)}")
            self.engine.query(f"TRUNCATE TABLE IF EXISTS {self._table(ds.name + ddl.QUARANTINE_SUFFIX)}")

    def _staging_table(self, ds: Datasource) -> str:
        staging = f"_tb_staging_{ds.name}_{uuid.uuid4().hex[:12]}"
        self.engine.query(f"CREATE TABLE {self._table(staging)} AS {self._table(ds.name)}")
        return staging

    def _count_where(self, table: str, condition: str, parameter: str) -> int:
        """Rows of `table` matching a checked condition, run read-only over every row: a condition that fails
        on any stored value is a 400 here, before anything changes."""
        try:
            # no alias: one would shadow a column of that name in the condition (`n > 3`)
            sql = f"SELECT count() FROM {self._table(table)} WHERE ({condition})"
            body = self.engine.query(sql, "JSONCompact", readonly=True)
        except EngineError as exc:
            raise bad_request(f"Invalid {parameter} '{condition}': {exc}") from None
        return int(json.loads(body)["data"][0][0])

    def _rewrite(self, ds: Datasource, condition: str, add_from: str | None = None) -> int:
        """`ds` without the rows matching `condition` (plus those of `add_from` that match it), swapped in with
        its roll-ups; the rows removed are counted. Callers hold the datasource's gate."""
        parameter = "replace_condition" if add_from else "delete_condition"
        matching = self._count_where(ds.name, condition, parameter)
        shadow = shadow_table(self.engine, ds.name, self.database)
        try:
            kept = f"SELECT * FROM {self._table(ds.name)} WHERE NOT ifNull(({condition}), 0)"
            self.engine.query(f"INSERT INTO {self._table(shadow)} {kept}")
            if add_from:
                added = f"SELECT * FROM {self._table(add_from)} WHERE ({condition})"
                self.engine.query(f"INSERT INTO {self._table(shadow)} {added}")
            swap_in(self.engine, self.snapshot, ds.name, shadow, self._rollups_of(ds), self.database)
        finally:
            self.engine.query(f"DROP TABLE IF EXISTS {self._table(shadow)}")
        return matching

    def _materialized_select(self, pipe: Pipe) -> str:
        """A materialized pipe's SELECT, without query hints: a view runs on each inserted block, and Tinybird's
        parser, which reads the SELECT for the tables it is fed by, refuses those settings."""
        return self._renderers[pipe.name].render({}, pipe.output_node.name, hints=False)

    def materializations_fed_by(self, ds: Datasource) -> list[tuple[Pipe, str]]:
        """The materialized pipes that read `ds`, each with its rendered SELECT."""
        fed = []
        for pipe in self.project.materializations.values():
            select = self._materialized_select(pipe)
            if (self.database, ds.name) in {(t[0], t[1]) for t in sql_get_used_tables(select, table_functions=False)}:
                fed.append((pipe, select))
        return fed

    def _targets_fed_by(self, name: str) -> list[str]:
        return [pipe.output_node.target for pipe, _ in self.materializations_fed_by(self.project.datasources[name])]

    def _rollups_of(self, ds: Datasource) -> list[tuple[str, str]]:
        return [(pipe.output_node.target, select) for pipe, select in self.materializations_fed_by(ds)]

    def _remember(self, result: ImportResult) -> ImportResult:
        self.jobs[result.id] = result
        while len(self.jobs) > 1000:
            self.jobs.popitem(last=False)
        return result

    # ---- data out ---------------------------------------------------------------------------------
    def endpoint(self, name: str) -> PipeRenderer:
        renderer = self._renderers.get(name)
        if renderer is None or renderer.pipe.kind != "endpoint":
            raise NotFound(f"The pipe '{name}' does not exist or is not published as an endpoint")
        return renderer

    def cached_read(self, sql: str, fmt: str) -> tuple[bytes, str]:
        """`run_read_query` through the result cache (resultcache.py): the answer, and hit, miss or bypass."""
        return self.reads.read(sql, fmt, self.run_read_query)

    def kept_read(self, sql: str, fmt: str) -> bytes | None:
        """The result cache's current answer of `sql`, if it keeps one (a hit), without running any query."""
        return self.reads.kept(sql, fmt)

    def run_read_query(self, sql: str, fmt: str) -> bytes:
        try:
            with self.snapshot.read():
                # a `tb_secret()` renders as a query parameter: its value is bound here, never put in the SQL
                return self.engine.query(sql, fmt, params=self.secrets.values(), readonly=True)
        except EngineError as exc:
            raise query_error(exc, self.settings, self.database) from None

    def secrets_changed(self) -> None:
        """A secret created, changed or deleted changes what `tb_secret()` renders to, or the value it binds."""
        self._render_cache.clear()
        self.reads.rebuilt()

    def sql_query(self, q: str, pipeline: str | None = None, values: dict[str, str] | None = None) -> tuple[bytes, str]:
        """`sql_select`'s query run: its answer and format."""
        select, fmt = self.sql_select(q, pipeline, values)
        return self.run_read_query(select, fmt), fmt

    def sql_select(self, q: str, pipeline: str | None = None, values: dict[str, str] | None = None) -> tuple[str, str]:
        """An ad-hoc read over datasources and pipes (`/v0/sql`) as the SQL to run and its output format (FORMAT at
        the end of `q` picks it).

        A templated `q` (`%` first) is rendered with `values`, and with `pipeline` the names of that pipe's nodes
        read those nodes, as in the pipe: how `tb test run` reads a node of a pipe that is not an endpoint.
        """
        if not q or not q.strip():
            raise bad_request("The 'q' parameter is required: a SELECT query")
        fmt = "TabSeparated"
        match = _FORMAT_CLAUSE.search(q)
        if match:
            fmt, q = match.group(1), q[: match.start()]
        base = self.project.pipes.get(pipeline) if pipeline else None
        if pipeline and base is None:
            raise NotFound(f"Pipe '{pipeline}' not found")
        nodes = base.nodes if base else ()
        templated = q.lstrip().startswith("%")
        if not templated:  # checked as written, so that a refusal speaks of the caller's own SQL
            self._check_read(q, {n.name for n in nodes})
        renderer = PipeRenderer(
            _adhoc_pipe(q, nodes), self._resolve_table, secrets=self.secrets.names, databases=(self.database, "system")
        )
        if templated:  # its SQL exists only once rendered: checked as it runs, every node inlined
            return self.checked_select(renderer, values or {}, _QUERY_NODE), fmt
        return renderer.render(values or {}, _QUERY_NODE), fmt

    def checked_select(self, renderer: PipeRenderer, values: dict[str, str], node_name: str | None = None) -> str:
        """`renderer`'s SQL for `values`, checked as a read of this workspace (its datasources and pipes only), then
        with its query hints as settings: added after the check, which refuses those settings in SQL it is given."""
        select, hints = renderer.render_parts(values, node_name)
        self._check_read(select, set())
        return with_hints(select, hints)

    def _check_read(self, sql: str, nodes: set[str]) -> None:
        if not _READ_STATEMENT.match(sql):
            raise bad_request("Only SELECT queries are supported in /v0/sql")
        readable = self._readable
        sqlcheck.check_query(sql, lambda database, name: readable(database, name) or (not database and name in nodes))

    def _readable(self, database: str, name: str) -> bool:
        """What `/v0/sql` may read: the workspace's datasources, their quarantines and its pipes; ClickHouse's
        generator tables (`system.numbers`, ...); and, for the server's own workspace, whose admin runs the server,
        every `system` table (Tinybird offers its own service datasources there instead). A workspace created through
        the API does not read those: they name every workspace's tables and keep their queries (`system.query_log`)."""
        if database == "system":
            return self.database == DATABASE or (database, name) in GENERATOR_TABLES
        if database not in ("", self.database):
            return False
        return name.removesuffix(ddl.QUARANTINE_SUFFIX) in self.project.datasources or (
            database == "" and name in self.project.pipes
        )

    def _table(self, name: str) -> str:
        return ddl.table(name, self.database)

    def drop(self) -> None:
        """Remove every table of this workspace (hard delete), its deployments' staging copies too."""
        staged = self.engine.rows(
            "SELECT name FROM system.databases WHERE startsWith(name, {prefix:String})",
            {"prefix": self.staging_database("")},
        )
        for database in [row["name"] for row in staged] + [self.database]:
            self.engine.query(f"DROP DATABASE IF EXISTS `{database}` SYNC")

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_engine:
            self.engine.close()


def _adhoc_pipe(sql: str, nodes: tuple[Node, ...] = ()) -> Pipe:
    """A `/v0/sql` query as the last node of a pipe (after `nodes`, those of its `pipeline`), so it resolves
    datasources, pipes and nodes like any endpoint."""
    return Pipe(name="query", nodes=(*nodes, Node(name=_QUERY_NODE, sql=sql)))


def query_error(exc: EngineError, settings: ServerSettings, database: str | None = None) -> RequestError:
    """A read that ClickHouse stopped, answered as Tinybird's Pipes and Query APIs do: a query over its time is a
    408, one over its memory or result size a 400 (it must ask for less), the server itself out of memory a 503
    (worth a retry); anything else is the query's fault, a 400. ClickHouse's error name stays in the message; the
    workspace's tables are named as the caller names them, without the database they are kept in."""
    if database:
        exc = EngineError(re.sub(rf"(?<![\w.`]){re.escape(database)}\.(?=[`\w])", "", str(exc)))
    if exc.code == "TIMEOUT_EXCEEDED":
        return RequestTimeout(f"[Error] The query exceeded the {settings.max_execution_time:g} s limit: {exc}")
    if exc.code == "MEMORY_LIMIT_EXCEEDED" and "(total)" in str(exc):
        return ServiceUnavailable(f"[Error] The server is out of memory, retry later: {exc}", {"Retry-After": "1"})
    if exc.code == "MEMORY_LIMIT_EXCEEDED":
        return bad_request(f"[Error] The query exceeded the {settings.max_memory_usage} bytes memory limit: {exc}")
    if exc.code == "TOO_MANY_ROWS_OR_BYTES":
        return bad_request(f"[Error] The result exceeds {settings.max_result_bytes} bytes: add filters or a LIMIT")
    return bad_request(f"[Error] {exc}")

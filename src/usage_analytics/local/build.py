"""Building a project into a workspace's database: what changed since the last build, and applying it.

A build is a deployment: it compares each datasource with what the database holds and creates, extends or (when
empty) recreates its table; a change that would lose rows is refused before anything is touched, and a datasource
no longer in the project is dropped. Materialized views are recreated on every build and backfill a target that
the build created. `diff(old_state, new_project) -> Changes` is pure: the names `tb build` and `tb deploy` report
as new, changed and deleted, and an empty one is "No changes".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path

from . import ddl
from .engine import Engine, EngineError
from .errors import RequestError
from .project import Datasource, Pipe, Project, ProjectError, load_project
from .settings import ServerSettings
from .sqlcheck import with_aliases_named_like

_DEFAULT_CLAUSE = re.compile(r" DEFAULT .*?( CODEC\(.*)?$", re.DOTALL)
SERVED_PIPE_KINDS = ("", "endpoint", "materialized", "copy")  # TYPE SINK (exports) is read but never run
_FSYNC_SETTINGS = ("fsync_after_insert", "fsync_part_directory")
_STATE_FORMAT = 2  # {"format": 2, "datasources": ..., "pipes": ...}; format 1 was {datasource: signature}


class Action(StrEnum):
    """What a build does to one datasource's table."""

    CREATE = "create"  # there is no table yet
    KEEP = "keep"  # the table already is what the datafile says
    ADOPT = "adopt"  # a table stored before signatures were: kept as it is, its signature stored from now on
    EXTEND = "extend"  # new columns at the end, a changed DEFAULT, INDEXES or TTL: altered, the rows stay
    RECREATE = "recreate"  # any other change to an empty table: dropped and created anew
    FORWARD = "forward"  # any other change to a table with rows and a FORWARD_QUERY: rewritten through it


@dataclass(frozen=True)
class Problem:
    """One reason a build was refused: the datafile (relative to the project, "" for none) and what is wrong."""

    filename: str
    error: str


class BuildError(Exception):
    """A build refused as a whole; nothing was changed."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(f"{p.filename}: {p.error}" if p.filename else p.error for p in problems))
        self.problems = problems


def pipe_signature(pipe: Pipe) -> list[dict]:
    """What makes a pipe answer the same: its nodes, in order, with their SQL, types and targets (JSON as stored)."""
    return [{"name": n.name, "sql": n.sql, "kind": n.kind, "target": n.target} for n in pipe.nodes]


@dataclass(frozen=True)
class State:
    """What a workspace was built with: each datasource's table signature and each pipe's nodes."""

    datasources: dict[str, dict] = field(default_factory=dict)
    pipes: dict[str, list] = field(default_factory=dict)

    @classmethod
    def of(cls, project: Project) -> State:
        return cls(
            {name: ddl.signature(ds) for name, ds in project.datasources.items()},
            {name: pipe_signature(pipe) for name, pipe in project.pipes.items()},
        )

    @classmethod
    def load(cls, path: Path) -> State:
        stored = json.loads(path.read_text()) if path.exists() else {}
        if stored.get("format") == _STATE_FORMAT:
            return cls(stored["datasources"], stored["pipes"])
        return cls(datasources=stored)  # a data dir from before pipes were recorded: its datasources alone

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        state = {"format": _STATE_FORMAT, "datasources": self.datasources, "pipes": self.pipes}
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)


@dataclass(frozen=True)
class Changes:
    """What a build adds, changes and deletes, by name, in project order (deleted ones in the old order)."""

    new_datasources: tuple[str, ...] = ()
    changed_datasources: tuple[str, ...] = ()
    deleted_datasources: tuple[str, ...] = ()
    new_pipes: tuple[str, ...] = ()
    changed_pipes: tuple[str, ...] = ()
    deleted_pipes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def as_json(self) -> dict[str, list[str]]:
        """The `build` (and `deployment`) fields `tb` reads; connectors are not served, so theirs are empty."""
        names = {f"{f.name.removesuffix('s')}_names": list(getattr(self, f.name)) for f in fields(self)}
        return {**names, **{f"{kind}_data_connector_names": [] for kind in ("new", "changed", "deleted")}}


def diff(old: State, new: Project) -> Changes:
    """The datasources and pipes that `new` adds, changes and deletes compared with a workspace built with `old`."""
    wanted = State.of(new)

    def compare(before: dict, after: dict) -> tuple[tuple[str, ...], ...]:
        return (
            tuple(name for name in after if name not in before),
            tuple(name for name in after if name in before and before[name] != after[name]),
            tuple(name for name in before if name not in after),
        )

    return Changes(*compare(old.datasources, wanted.datasources), *compare(old.pipes, wanted.pipes))


def filename(project: Project, path: str | Path | None) -> str:
    """A datafile's name as `tb` sent it and shows it: relative to the project folder."""
    if not path:
        return ""
    try:
        return Path(path).relative_to(project.root).as_posix()
    except ValueError:
        return str(path)


def read_project(root: Path) -> Project:
    """The project in `root`; datafiles that do not parse refuse the build, each reported with its file."""
    try:
        return load_project(root)
    except ProjectError as exc:
        named = Project(root=root.resolve())
        raise BuildError([Problem(filename(named, path), detail) for path, detail in exc.problems]) from None


def plan(
    project: Project, held: State, engine: Engine, database: str, tables: dict[str, dict] | None = None
) -> dict[str, Action]:
    """What each datasource's table needs, given the signatures `held` of the tables the database holds (and those
    tables, `Engine.tables`, when the caller has just read them); a change that would lose rows refuses the whole
    build."""
    actions, problems = {}, []
    derived = {pipe.output_node.target for pipe in project.materializations.values()}
    tables = engine.tables(database) if tables is None else tables
    for name, ds in project.datasources.items():
        wanted, old = ddl.signature(ds), held.datasources.get(name)
        if name not in tables:
            actions[name] = Action.CREATE
        elif old is None or old == wanted:
            actions[name] = Action.KEEP if old == wanted else Action.ADOPT
        elif (rows := engine.row_count(name, database)) == 0:
            actions[name] = Action.RECREATE
        elif _without_ttl(old["engine"]) == _without_ttl(wanted["engine"]) and _alterable(
            old["columns"], wanted["columns"]
        ):
            actions[name] = Action.EXTEND
        elif name in derived:
            # a materialization's target holds what its sources say: rebuilt from them, as a Tinybird deployment
            # repopulates a changed materialized view (rows sent to such a target directly would not come back)
            actions[name] = Action.RECREATE
        elif ds.forward_query:
            # as a Tinybird deployment rewrites a landing datasource: a new table filled by the FORWARD_QUERY
            actions[name] = Action.FORWARD
        else:
            changed = "engine or keys" if old["engine"] != wanted["engine"] else "existing columns"
            problems.append(
                Problem(
                    filename(project, ds.path),
                    f"datasource {name}: the change to its {changed} is incompatible with the {rows} rows it holds; "
                    "without a FORWARD_QUERY, a datasource with data can only add columns at the end, remove columns, "
                    "make columns Nullable and change DEFAULTs, INDEXES and ENGINE_TTL (add one, truncate it first, "
                    "or revert the change)",
                )
            )
    if problems:
        raise BuildError(problems)
    return actions


def _shapes(columns: list[str]) -> list[str]:
    """Column definitions without their DEFAULT: what must match for the stored rows to keep their meaning."""
    return [_DEFAULT_CLAUSE.sub(r"\1", column) for column in columns]


def _name(column: str) -> str:
    """The name in a signature's column definition (`` `name` Type ...``)."""
    return column[1 : column.index("`", 1)]


def _made_nullable(before: str, after: str) -> bool:
    """Whether the column shape `after` is `before` made Nullable (inside LowCardinality too), codec unchanged."""

    def split(shape: str) -> tuple[str, str]:
        body = shape[len(_name(shape)) + 3 :]
        at = body.find(" CODEC(")
        return (body, "") if at < 0 else (body[:at], body[at:])

    (old_type, old_codec), (new_type, new_codec) = split(before), split(after)
    wrapped = f"LowCardinality(Nullable({old_type[len('LowCardinality(') : -1]}))"
    return old_codec == new_codec and new_type in (f"Nullable({old_type})", wrapped)


def _alterable(old: list[str], wanted: list[str]) -> bool:
    """Whether a table with rows goes from columns `old` to `wanted` by Tinybird's in-place ALTERs: columns removed,
    new ones at the end, a DEFAULT changed, a column made Nullable (the evolve-data-source page lists them)."""
    before = {_name(c): shape for c, shape in zip(old, _shapes(old), strict=True)}
    after = [(_name(c), shape) for c, shape in zip(wanted, _shapes(wanted), strict=True)]
    kept = [name for name, _ in after if name in before]
    if [name for name, _ in after[: len(kept)]] != kept or kept != [name for name in before if name in kept]:
        return False  # a new column before an old one, or old ones in another order
    return all(shape == before[name] or _made_nullable(before[name], shape) for name, shape in after if name in before)


def _ttl(engine: str) -> str | None:
    """The TTL clause of a signature's engine, without its keyword."""
    return next((line[len("TTL ") :] for line in engine.splitlines() if line.startswith("TTL ")), None)


def _without_ttl(engine: str) -> str:
    """A signature's engine without its TTL, which an ALTER changes in place (as Tinybird does)."""
    return "\n".join(line for line in engine.splitlines() if not line.startswith("TTL "))


@dataclass
class BuildReport:
    """What a build did: a line per datasource, materialization and endpoint, and the changes by name."""

    changes: Changes = field(default_factory=Changes)
    lines: list[str] = field(default_factory=list)
    created: set[str] = field(default_factory=set)  # tables this build created: their materializations backfill

    def add(self, line: str) -> None:
        self.lines.append(line)


class Builder:
    """Applies projects to one database: tables and their quarantines, skipping indexes, fsync and materialized
    views; `state_path` records what it applied, for the next build to compare with."""

    def __init__(self, engine: Engine, database: str, settings: ServerSettings, state_path: Path):
        self.engine, self.database, self.settings, self.state_path = engine, database, settings, state_path

    def held(self, tables: dict[str, dict]) -> State:
        """What the database holds, by the last build: the signatures of those of `tables` that still exist."""
        stored = State.load(self.state_path)
        return State({n: s for n, s in stored.datasources.items() if n in tables}, stored.pipes)

    def apply_tables(self, project: Project) -> BuildReport:
        """Bring the tables to `project` (checked as a whole first), with its materialized views dropped: the
        caller creates them again with `create_views` once it can render the project's pipes."""
        tables = self.engine.tables(self.database)  # one read for the plan and the views: neither changes a table
        held = self.held(tables)
        actions = plan(project, held, self.engine, self.database, tables)
        report = BuildReport(changes=diff(held, project))
        # a mutation that failed (left by an older version's DELETE) would block every later one on its table
        self.engine.query(
            "KILL MUTATION WHERE database = {db:String} AND NOT is_done AND latest_fail_reason != '' SYNC",
            params={"db": self.database},
        )
        self._drop_materialized_views(tables)
        for name in report.changes.deleted_datasources:
            self.engine.query(f"DROP TABLE IF EXISTS {self._table(name)}")
            self.engine.query(f"DROP TABLE IF EXISTS {self._table(name + ddl.QUARANTINE_SUFFIX)}")
            report.add(f"datasource {name}: deleted")
        for name, action in actions.items():
            ds = project.datasources[name]
            try:
                self._apply(ds, action, held.datasources.get(name))
            except EngineError as exc:
                raise BuildError([Problem(filename(project, ds.path), f"datasource {name}: {exc}")]) from None
            report.add(f"datasource {name}: {action}")
            if action in (Action.CREATE, Action.RECREATE):
                report.created.add(name)
        State.of(project).save(self.state_path)
        self._apply_fsync(project)
        for name, ds in project.datasources.items():
            if ds.connector:
                report.add(
                    f"datasource {name}: {ds.connector} is not served (no connector runs here): "
                    "send its rows through the Events API or the Data Sources API"
                )
        columns = {column.name for ds in project.datasources.values() for column in ds.columns}
        for name, pipe in project.pipes.items():
            if pipe.kind not in SERVED_PIPE_KINDS:
                report.add(f"pipe {name}: TYPE {pipe.kind.upper()} is not served: the pipe is not run")
            for node in pipe.nodes:
                for alias in with_aliases_named_like(node.sql, columns):
                    report.add(
                        f"pipe {name}, node {node.name}: the WITH alias {alias} is named like a column; Tinybird "
                        f"reads the column where {alias} is used, this server (ClickHouse 26.9) the alias: rename it"
                    )
        return report

    def create_views(self, project: Project, select: Callable[[Pipe], str], report: BuildReport) -> None:
        """A materialized view per materialization, its SELECT rendered by `select`; it backfills a target that
        this build created (one that already has rows got them from the view before)."""
        for pipe in project.materializations.values():
            node, backfill = pipe.output_node, pipe.output_node.target in report.created
            try:
                sql = select(pipe)
                self.engine.query(ddl.create_materialized_view(pipe.name, node.name, node.target, sql, self.database))
                if backfill:
                    target = project.datasources.get(node.target)
                    columns = [column.name for column in target.columns] if target else None
                    self.engine.insert_select(self._table(node.target), sql, columns)
            except (EngineError, RequestError) as exc:
                problem = Problem(filename(project, pipe.path), f"materialization {pipe.name}: {exc}")
                raise BuildError([problem]) from None
            report.add(f"materialization {pipe.name} -> {node.target}: created" + (", backfilled" if backfill else ""))

    def _apply(self, ds: Datasource, action: Action, old: dict | None) -> None:
        quarantine = ds.name + ddl.QUARANTINE_SUFFIX
        if action == Action.RECREATE:
            self.engine.query(f"DROP TABLE {self._table(ds.name)}")
            self.engine.query(f"DROP TABLE IF EXISTS {self._table(quarantine)}")
        if action in (Action.CREATE, Action.RECREATE):
            self.engine.query(ddl.create_table(ds, self.database))
        if action == Action.EXTEND:
            table = self._table(ds.name)
            held = {_name(column): column for column in old["columns"]}
            for name in held.keys() - {column.name for column in ds.columns}:
                self.engine.query(f"ALTER TABLE {table} DROP COLUMN `{name}` SETTINGS mutations_sync = 2")
            for column in ds.columns:
                wanted, before = ddl.column_sql(column), held.get(column.name)
                if before is None:
                    self.engine.query(f"ALTER TABLE {table} ADD COLUMN {wanted}")
                    self.engine.query(
                        f"ALTER TABLE {self._table(quarantine)} ADD COLUMN IF NOT EXISTS `{column.name}` "
                        "Nullable(String)"
                    )
                elif wanted != before and _shapes([wanted]) == _shapes([before]):  # only its DEFAULT changed
                    # parts written before the column existed compute it from the DEFAULT when read: write
                    # those values down first, or the new DEFAULT would change rows already stored
                    self.engine.query(
                        f"ALTER TABLE {table} MATERIALIZE COLUMN `{column.name}` SETTINGS mutations_sync = 2"
                    )
                    change = wanted if column.default is not None else f"`{column.name}` REMOVE DEFAULT"
                    self.engine.query(f"ALTER TABLE {table} MODIFY COLUMN {change}")
                elif wanted != before:  # made Nullable (the plan checked it): the stored values keep theirs
                    self.engine.query(f"ALTER TABLE {table} MODIFY COLUMN {wanted} SETTINGS mutations_sync = 2")
            self._apply_indexes(ds, old.get("indexes", []))
            self._apply_ttl(ds, _ttl(old["engine"]))
        self.engine.query(ddl.create_quarantine(ds, self.database))
        if action == Action.FORWARD:
            self._forward(ds)
            for column in ds.columns:  # the quarantine keeps its rows, and gets the raw text of any new column
                self.engine.query(
                    f"ALTER TABLE {self._table(quarantine)} ADD COLUMN IF NOT EXISTS `{column.name}` Nullable(String)"
                )

    def _apply_ttl(self, ds: Datasource, old: str | None) -> None:
        """A TTL added, changed or removed in place; the stored rows it now expires are deleted before the build
        ends, as Tinybird's ALTER does (ClickHouse would leave them to a later merge)."""
        table, ttl = self._table(ds.name), ds.engine_args.get("ttl")
        if ttl == old:
            return
        if ttl:
            self.engine.query(f"ALTER TABLE {table} MODIFY TTL {ttl} SETTINGS mutations_sync = 2")
        else:
            self.engine.query(f"ALTER TABLE {table} REMOVE TTL SETTINGS mutations_sync = 2")

    def _forward(self, ds: Datasource) -> None:
        """The table rewritten to `ds`: a new one filled with the FORWARD_QUERY over the stored rows (by column name),
        swapped in for the old one, which is dropped. A query that fails refuses the build and keeps the old table."""
        table, fresh = self._table(ds.name), self._table(ds.name + "__tb_forward")
        self.engine.query(f"DROP TABLE IF EXISTS {fresh}")
        self.engine.query(ddl.create_table(ds, self.database).replace(table, fresh, 1))
        select = f"{ds.forward_query}\nFROM {table}"
        if alive := ddl.ttl_alive(ds):  # rows the new TTL expires are not carried over, as at ingest
            select = f"SELECT * FROM ({select}) WHERE {alive}"
        try:
            self.engine.insert_select(fresh, select)
        except EngineError:
            self.engine.query(f"DROP TABLE IF EXISTS {fresh}")
            raise
        self.engine.query(f"EXCHANGE TABLES {table} AND {fresh}")
        self.engine.query(f"DROP TABLE {fresh}")

    def _apply_indexes(self, ds: Datasource, old: list[str]) -> None:
        """A skipping index added to (or removed from) a datasource with data is built over (or dropped from)
        the rows it holds; the rows themselves stay."""
        table = self._table(ds.name)
        for index in old:
            if index not in ds.indexes:
                self.engine.query(f"ALTER TABLE {table} DROP INDEX `{ddl.index_name(index)}`")
        for index in ds.indexes:
            if index not in old:
                self.engine.query(f"ALTER TABLE {table} ADD {index}")
                self.engine.query(f"ALTER TABLE {table} MATERIALIZE INDEX `{ddl.index_name(index)}`")

    def _apply_fsync(self, project: Project) -> None:
        """Each MergeTree table's fsync settings made `settings.fsync`; a table that already has them (as one just
        created has the server's defaults) is left alone: one ALTER per table at every start cost a tenth of it."""
        wanted = str(int(self.settings.fsync))
        names = ", ".join(f"'{setting}'" for setting in _FSYNC_SETTINGS)
        rows = self.engine.rows(f"SELECT name, value FROM system.merge_tree_settings WHERE name IN ({names})")
        defaults = {row["name"]: row["value"] for row in rows}
        tables = self.engine.tables(self.database)
        for name, ds in project.datasources.items():
            if "MergeTree" not in ds.engine or name not in tables:
                continue
            engine_full = tables[name]["engine_full"]
            held = [
                found.group(1) if (found := re.search(rf"\b{setting} = (\d+)", engine_full)) else defaults.get(setting)
                for setting in _FSYNC_SETTINGS
            ]
            if any(value != wanted for value in held):
                changes = ", ".join(f"{setting} = {wanted}" for setting in _FSYNC_SETTINGS)
                self.engine.query(f"ALTER TABLE {self._table(name)} MODIFY SETTING {changes}")

    def _drop_materialized_views(self, tables: dict[str, dict]) -> None:
        for name, table in tables.items():
            if table["engine"] == "MaterializedView":
                self.engine.query(f"DROP VIEW {self._table(name)}")

    def _table(self, name: str) -> str:
        return ddl.table(name, self.database)

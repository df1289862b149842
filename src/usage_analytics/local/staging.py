"""A deployment's staging copy beside the live workspace, and its promotion.

The live tables always stay in the workspace's own database, whose name never changes: nothing that names it
(restarts, the SQL checker, the first workspace's `tb`) has to know about deployments. A deployment is built in a
database of its own, `<workspace database>__d<id>`:

1. the live tables whose rows it keeps are copied in by hard links (`ATTACH PARTITION ALL FROM`: no data is
   rewritten, no materialized view fires, the live tables are untouched), recorded with the signatures the live
   build gave them;
2. the uploaded project is built over them by the workspace's own build (build.py): kept tables stay, extended
   ones are altered (the copy, not the live table), new and changed ones are created, and each materialization
   whose target was created backfills it from the carried rows.

That is the staging copy, `data_ready`. Its promotion holds every write to the workspace (appends wait, as they do
for a replace), builds the copy again so that it has every row appended meanwhile, and then, under the workspace's
snapshot lock (no read runs meanwhile), exchanges each of its tables with the live one (`EXCHANGE TABLES`, a
rename in the catalog; a new table is renamed in, a deleted one out), and the workspace serves the new project.
A read sees the old tables and pipes or the new ones, never a mix, and a promotion that fails before the exchange
leaves the live workspace as it was. The staging database then holds the previous deployment's tables, dropped
when that deployment is deleted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import ddl, deployplan, upload
from .build import State
from .deployplan import DeployPlan
from .engine import Engine
from .project import Project
from .workspace import Workspace


class Refused(Exception):
    """A deployment that would be destructive without leave: `plan.errors` says which change and why."""

    def __init__(self, plan: DeployPlan):
        super().__init__("; ".join(e["error"] for e in plan.errors))
        self.plan = plan


def prepare(
    ws: Workspace, deployment_id: str, uploaded: Project, allow_destructive: bool
) -> tuple[Workspace, DeployPlan]:
    """The staging copy of `uploaded` (read from a folder whose parent keeps the copy's build state), with the live
    rows it carries; planned again against the live workspace as it is now."""
    plan = deployplan.plan(ws.project, uploaded, ws.engine, ws.database, allow_destructive)
    if plan.errors:
        raise Refused(plan)
    database, engine, folder = ws.staging_database(deployment_id), ws.engine, Path(uploaded.root)
    engine.query(f"DROP DATABASE IF EXISTS `{database}` SYNC")  # a copy made before: its rows may be out of date
    engine.query(f"CREATE DATABASE `{database}`")
    engines = _engines(engine, ws.database)
    carried = {}
    for name, how in plan.data.items():
        if how != "fresh":
            for table in (name, name + ddl.QUARANTINE_SUFFIX):
                if table in engines:
                    _copy(engine, table, engines[table], ws.database, database)
            carried[name] = ddl.signature(ws.project.datasources[name])
    staging = Workspace(folder, ws.data_dir, ws.settings, engine=engine, database=database, state_dir=folder.parent)
    staging.hold_tables(State(carried))
    staging.build(folder)
    return staging, plan


def _engines(engine: Engine, database: str) -> dict[str, str]:
    """The tables of `database`, with their engines."""
    found = engine.rows("SELECT name, engine FROM system.tables WHERE database = {db:String}", {"db": database})
    return {row["name"]: row["engine"] for row in found}


def _copy(engine: Engine, table: str, kind: str, source: str, target: str) -> None:
    """`table` of database `source` into `target`, its parts hard-linked (MergeTree's; a Null table holds no rows)."""
    engine.query(f"CREATE TABLE {ddl.table(table, target)} AS {ddl.table(table, source)}")
    if "MergeTree" in kind:
        engine.query(f"ALTER TABLE {ddl.table(table, target)} ATTACH PARTITION ALL FROM {ddl.table(table, source)}")


def promote(ws: Workspace, staging: Workspace, plan: DeployPlan) -> None:
    """Swap the staging copy in for the live tables and serve its project; the caller holds `ws.writes_held()`
    (so the copy has every row) and gives the plan it was prepared with."""
    engine, live, staged = ws.engine, ws.database, staging.database
    staged_tables = _engines(engine, staged)
    # the staging copy's views have done their backfills; left in place, they would follow their tables live
    for name, kind in staged_tables.items():
        if kind == "MaterializedView":
            engine.query(f"DROP VIEW {ddl.table(name, staged)}")
    moved = [t for name in staging.project.datasources for t in (name, name + ddl.QUARANTINE_SUFFIX)]
    removed = [t for name in plan.changes.deleted_datasources for t in (name, name + ddl.QUARANTINE_SUFFIX)]

    def move_tables() -> None:
        # one statement each, so that the catalog changes in as few steps as it can (reads are held meanwhile)
        live_tables = _engines(engine, live)
        swaps = [f"{ddl.table(t, live)} AND {ddl.table(t, staged)}" for t in moved if t in live_tables]
        renames = [f"{ddl.table(t, staged)} TO {ddl.table(t, live)}" for t in moved if t not in live_tables]
        renames += [f"{ddl.table(t, live)} TO {ddl.table(t, staged)}" for t in removed if t in live_tables]
        if swaps:
            engine.query(f"EXCHANGE TABLES {', '.join(swaps)}")
        if renames:
            engine.query(f"RENAME TABLE {', '.join(renames)}")

    # the live datafiles go where `tb build` puts them too (http/build.py): a workspace of the registry is rebuilt
    # from that folder after a restart
    folder = ws.state_dir / "build"
    with upload.replacing(folder):
        shutil.copytree(staging.project_dir, folder)
        ws.adopt(folder, staging.project, move_tables)

"""Replace and delete as one swap that readers cannot see half of.

The new rows of a datasource are built in a shadow table beside the live one, and so is every roll-up they feed
(recomputed from the shadow); then all of them are exchanged with the live tables in one short step under the
snapshot lock, which every read holds shared. A query therefore sees the datasource and its roll-ups all before
or all after, never a missing slice or an emptied roll-up; and a replace or delete that fails on the way (a bad
condition, memory, disk) has changed nothing. ClickHouse's materialized views follow their tables by name, so
after `EXCHANGE TABLES` they feed the new ones.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from tinybird.sql_toolset import replace_tables

from . import ddl
from .engine import DATABASE, Engine


class SnapshotLock:
    """Reads share it; publishing a swap (a few `EXCHANGE TABLES`, milliseconds) has it alone. A waiting publish
    goes ahead of new reads, so it waits at most for the reads already running (each bounded in time)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = self._publishers_waiting = 0
        self._publishing = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._publishing and not self._publishers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def publish(self) -> Iterator[None]:
        with self._cond:
            self._publishers_waiting += 1
            self._cond.wait_for(lambda: not self._publishing and not self._readers)
            self._publishers_waiting -= 1
            self._publishing = True
        try:
            yield
        finally:
            with self._cond:
                self._publishing = False
                self._cond.notify_all()


def shadow_table(engine: Engine, of: str, database: str = DATABASE) -> str:
    """An empty table shaped as `of` (columns, engine, keys, indexes, settings), under a name of its own."""
    name = f"_tb_shadow_{of}_{uuid.uuid4().hex[:12]}"
    engine.query(f"CREATE TABLE {ddl.table(name, database)} AS {ddl.table(of, database)}")
    return name


def swap_in(
    engine: Engine,
    snapshot: SnapshotLock,
    datasource: str,
    shadow: str,
    rollups: list[tuple[str, str]],
    database: str = DATABASE,
) -> None:
    """Make `datasource` the rows of the table `shadow`, and each roll-up `(target, select over datasource)` what
    its select gives over them. Afterwards `shadow` holds the old rows: the caller drops it."""
    built: list[tuple[str, str]] = [(datasource, shadow)]
    try:
        for target, select in rollups:
            target_shadow = shadow_table(engine, target, database)
            built.append((target, target_shadow))
            over_shadow = replace_tables(select, {(database, datasource): (database, shadow)})
            engine.insert_select(ddl.table(target_shadow, database), over_shadow)
        with snapshot.publish():
            for live, new in built:
                engine.query(f"EXCHANGE TABLES {ddl.table(live, database)} AND {ddl.table(new, database)}")
    finally:
        for _, new in built[1:]:
            engine.query(f"DROP TABLE IF EXISTS {ddl.table(new, database)}")

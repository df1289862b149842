"""chDB, the embedded ClickHouse: one data path per process, one session per thread.

chDB binds a process to a single data path, so a server (or a test needing its own data) is its own
process. Sessions on that path are cheap and isolate their settings, and queries in different sessions
run in parallel, so each worker thread keeps its own session.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from chdb import session as chdb_session

from .settings import DEFAULTS, ServerSettings

DATABASE = "tb"
_GLOB_CHARS = "*?{}"  # what ClickHouse's file() expands in a path
_CODE_NAME = re.compile(r"\(([A-Z_]+)\)\s*$")
_CODE_PREFIX = re.compile(r"^(?:Code: \d+\. DB::Exception: )+")
_QUERY_ECHO = re.compile(r"[.:]? (?:in scope|while processing) ", re.IGNORECASE)
# Tinybird's SQL semantics where they differ from ClickHouse's defaults and real projects rely on them (inferred
# from how Tinybird answers; its docs name no settings): a joined subquery needs no alias. Writers too: a
# materialized view's SELECT runs in the session of the insert. Not applied: prefer_column_name_to_alias = 1, which
# would make `WITH expr AS col` resolve to the column as Tinybird seems to, but also makes
# `toStartOfHour(ts) AS ts ... GROUP BY ts` group by the raw column, silently; without Tinybird documenting it,
# a wrong count is the worse risk. A JSON column's paths (Dynamic values) may be grouped and sorted by, as Tinybird's
# own projects do (tinybirdco/tinynest) and ClickHouse allowed before 24.11.
_TINYBIRD_SEMANTICS = (
    "joined_subquery_requires_alias = 0, allow_suspicious_types_in_group_by = 1, allow_suspicious_types_in_order_by = 1"
)


def quote_name(name: str) -> str:
    """`name` as a ClickHouse identifier in backticks, whatever it holds: inside backticks ClickHouse reads a
    backslash as an escape, so backslashes and backticks are both escaped."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_text(value: str) -> str:
    """`value` as a ClickHouse string literal: backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class EngineError(Exception):
    """A query ClickHouse refused; the message is ClickHouse's first line."""

    @property
    def code(self) -> str:
        """ClickHouse's error name (`TIMEOUT_EXCEEDED`, `MEMORY_LIMIT_EXCEEDED`, ...), or '' when it gives none."""
        match = _CODE_NAME.search(str(self))
        return match.group(1) if match else ""


class DataDirLocked(Exception):
    pass


def _first_line(exc: Exception) -> str:
    """ClickHouse's message as Tinybird words it: without the `Code: N. DB::Exception:` prefixes, and without the
    echo of the query it failed on (megabytes at times, and the SQL of every node and pipe a read inlined, which
    the caller need not see); the error's name, `(UNKNOWN_IDENTIFIER)`, stays at the end."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    name = _CODE_NAME.search(line)
    line = _CODE_PREFIX.sub("", line)
    echo = _QUERY_ECHO.search(line)
    if echo:
        line = line[: echo.start()].rstrip(" .:") + "."
        if name:
            line += f" ({name.group(1)})"
    return line if len(line) <= 500 else line[:500] + "..."


class Engine:
    def __init__(self, data_dir: Path, settings: ServerSettings = DEFAULTS):
        self.settings = settings
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = self._acquire_lock()
        self.spool = self._spool()
        self._local = threading.local()
        self._sessions: list[chdb_session.Session] = []
        self._sessions_lock = threading.Lock()
        self.query(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")

    def _acquire_lock(self):
        """A second server on the same data dir would corrupt it: refuse it with a clear message."""
        handle = open(self.data_dir / ".lock", "a+")  # noqa: SIM115 - held for the engine's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DataDirLocked(
                f"data dir {self.data_dir} is in use by another server; stop it or choose another --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def _spool(self) -> Path:
        """Where batches wait for their query (ingest's Arrow files, each removed once read; a crash may leave some,
        so it is emptied here). ClickHouse's file() reads `*`, `?` and `{a,b}` in a path as a glob, so a data dir
        whose path holds one gets a private temporary spool instead, removed at close."""
        spool = self.data_dir / "spool"
        shutil.rmtree(spool, ignore_errors=True)
        if any(char in str(spool) for char in _GLOB_CHARS):
            return Path(tempfile.mkdtemp(prefix="usage-analytics-spool-"))
        spool.mkdir()
        return spool

    def _session(self, readonly: bool) -> chdb_session.Session:
        """This thread's session; the read-only one runs with readonly=2, which no query can lift, and with the
        time, memory and result limits of every query a request runs (a caller's SQL cannot change them: the
        checker refuses those settings, as Tinybird does). A write is bounded in memory only: a large import or a
        roll-up rebuild may take longer than a read is allowed to."""
        attr = "reader" if readonly else "writer"
        sess = getattr(self._local, attr, None)
        if sess is None:
            limits = self.settings
            sess = chdb_session.Session(str(self.data_dir / "chdb"))
            sess.query("SET session_timezone = 'UTC'")
            sess.query(f"SET {_TINYBIRD_SEMANTICS}")
            sess.query(f"SET max_memory_usage = {int(limits.max_memory_usage)}")
            if readonly:
                sess.query(
                    f"SET max_execution_time = {float(limits.max_execution_time)}, timeout_overflow_mode = 'throw', "
                    f"max_result_bytes = {int(limits.max_result_bytes)}, result_overflow_mode = 'throw'"
                )
                sess.query("SET readonly = 2")
            else:
                # an insert feeds every materialized view of its table: in parallel, not one after another
                # (18% less time per batch with the four api_logs roll-ups, BENCHMARKS.md)
                sess.query("SET parallel_view_processing = 1")
            setattr(self._local, attr, sess)
            with self._sessions_lock:
                self._sessions.append(sess)
        return sess

    def query(self, sql: str, fmt: str = "JSONEachRow", params: dict | None = None, readonly: bool = False) -> bytes:
        sess = self._session(readonly)
        try:
            return sess.query(sql, fmt, params=params or {}).bytes()
        except Exception as exc:  # chDB raises bare RuntimeError/ChdbError
            self._discard(sess, readonly)
            raise EngineError(_first_line(exc)) from None

    def _discard(self, sess: chdb_session.Session, readonly: bool) -> None:
        """A query that fails after its output began (a JSON header, then a row that does not parse) leaves that
        output in the session, and chDB prepends it to the next answer: the thread gets a new session instead
        (0.5 ms; the others are untouched)."""
        setattr(self._local, "reader" if readonly else "writer", None)
        with self._sessions_lock:
            self._sessions.remove(sess)
        with contextlib.suppress(Exception):
            sess.close()

    def insert_select(self, table: str, select: str, columns: Iterable[str] | None = None) -> None:
        """Insert what `select` gives into `table` as a materialized view would: each output column into the
        table's column of that name, whatever the order (a plain `INSERT ... SELECT` goes by position); a column
        the table lacks is left out and one the select lacks gets its DEFAULT. `columns`: the table's, when the
        caller knows them (else the table is described)."""
        present = set(columns) if columns is not None else {row["name"] for row in self.rows(f"DESCRIBE TABLE {table}")}
        names = [row["name"] for row in self.rows(f"DESCRIBE ({select})") if row["name"] in present]
        columns = ", ".join(quote_name(name) for name in names)
        self.query(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM ({select})")

    def rows(self, sql: str, params: dict | None = None) -> list[dict]:
        out = self.query(sql, "JSONEachRow", params)
        return [json.loads(line) for line in out.splitlines() if line]

    def scalar(self, sql: str, params: dict | None = None):
        rows = self.rows(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def tables(self, database: str = DATABASE) -> dict[str, dict]:
        """Every table and view of `database` by name, each with its `engine` and `engine_full` (the engine with its
        clauses, SETTINGS included): one read of system.tables where a build would otherwise ask once per table."""
        rows = self.rows(
            "SELECT name, engine, engine_full FROM system.tables WHERE database = {db:String}", {"db": database}
        )
        return {row["name"]: row for row in rows}

    def row_count(self, name: str, database: str = DATABASE) -> int:
        return int(self.scalar(f"SELECT count() FROM {database}.`{name}`") or 0)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._sessions_lock:
            for sess in self._sessions:
                with contextlib.suppress(Exception):  # never block shutdown on a session that won't close
                    sess.close()
            self._sessions.clear()
        if self.spool.parent != self.data_dir:
            shutil.rmtree(self.spool, ignore_errors=True)
        self._lock_file.close()

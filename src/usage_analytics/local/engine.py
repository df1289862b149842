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
import threading
from pathlib import Path

from chdb import session as chdb_session

DATABASE = "tb"


class EngineError(Exception):
    """A query ClickHouse refused; the message is ClickHouse's first line."""


class DataDirLocked(Exception):
    pass


def _first_line(exc: Exception) -> str:
    """ClickHouse's message without the echo of the query it failed on, which can be megabytes."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    line = line.split(": In scope ")[0].split(" While processing ")[0]
    return line if len(line) <= 500 else line[:500] + "..."


class Engine:
    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = self._acquire_lock()
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

    def _session(self, readonly: bool) -> chdb_session.Session:
        """This thread's session; the read-only one runs with readonly=2, which no query can lift."""
        attr = "reader" if readonly else "writer"
        sess = getattr(self._local, attr, None)
        if sess is None:
            sess = chdb_session.Session(str(self.data_dir / "chdb"))
            sess.query("SET session_timezone = 'UTC'")
            if readonly:
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
        try:
            return self._session(readonly).query(sql, fmt, params=params or {}).bytes()
        except Exception as exc:  # chDB raises bare RuntimeError/ChdbError
            raise EngineError(_first_line(exc)) from None

    def rows(self, sql: str, params: dict | None = None) -> list[dict]:
        out = self.query(sql, "JSONEachRow", params)
        return [json.loads(line) for line in out.splitlines() if line]

    def scalar(self, sql: str, params: dict | None = None):
        rows = self.rows(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def table_exists(self, name: str) -> bool:
        return bool(
            self.scalar(
                "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {name:String}",
                {"db": DATABASE, "name": name},
            )
        )

    def row_count(self, name: str) -> int:
        return int(self.scalar(f"SELECT count() FROM {DATABASE}.`{name}`") or 0)

    def close(self) -> None:
        with self._sessions_lock:
            for sess in self._sessions:
                with contextlib.suppress(Exception):  # never block shutdown on a session that won't close
                    sess.close()
            self._sessions.clear()
        self._lock_file.close()

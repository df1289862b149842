"""Answers kept between writes: a dashboard's repeated reads answered without running their query again.

The cache is exact. An answer is kept under (workspace, output format, rendered SQL) with the versions, taken as
its query started, of every datasource that SQL reads (materialized targets are datasources too). A write bumps the
version of its datasource and of every datasource its materializations feed, after the rows are visible and before
the write is acknowledged; a build or a secret changed bumps the workspace's epoch, part of every version. An entry
whose versions are no longer current is never served, so an acknowledged write is seen by the next read, and an
answer that raced a write is at worst not kept. What the SQL alone does not decide is never kept ("bypass"): the
clock and randomness (`now()`, `today()`, `rand()`, ... the functions ClickHouse itself calls non-deterministic), table
functions, tables other than the workspace's datasources (`system.*`), and answers too large for the budget. The
answer kept is one a query could have given: where ClickHouse may give several (`any()`, a LIMIT without ORDER BY,
rows a background merge has not yet collapsed), it is the one the first query gave, until the next write.

Every caller's rights are checked before the cache is asked; what a token changes (a JWT's fixed_params) is in the
SQL. Entries are bounded in bytes, least recently used out first, as rendered SQL is (rendercache.py); all the
workspaces of a server (one chDB engine) share one budget.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import chdb
from tinybird.sql_toolset import sql_get_used_tables

from . import ddl
from .engine import Engine
from .pipes import without_hints
from .project import Datasource, cache_dir, keep
from .rendercache import charge_toolset, text_bytes
from .settings import DEFAULTS, ServerSettings

HIT, MISS, BYPASS = "hit", "miss", "bypass"
_ENTRY_OVERHEAD = 400  # the key tuple, the entry, its tuples and the dict slot of one entry, roughly
# called non-deterministic by ClickHouse, yet fixed by the data and the query: a cached answer is what a run gives
_DETERMINISTIC_HERE = {
    name.lower()
    for name in (
        *("arrayJoin", "unnest", "isConstant", "toColumnTypeName", "dumpColumnStructure"),
        *("currentDatabase", "current_database", "DATABASE", "SCHEMA", "version", "revision", "buildId"),
        *("timezone", "timeZone", "serverTimezone", "serverTimeZone"),  # sessions run in UTC (engine.py)
        *("currentUser", "current_user", "user", "session_user"),
    )
}
_LITERAL = re.compile(r"'(?:[^'\\]|\\.|'')*'")
_WORD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\s*\()?")
_ELAPSED = re.compile(rb'("statistics":\s*\{\s*"elapsed": *)[0-9.eE+-]+')


@dataclass(frozen=True)
class Entry:
    body: bytes
    datasources: tuple[str, ...]
    versions: tuple[int, ...]  # the epoch, then one per datasource, as the query started
    size: int


class ResultCache:
    """Entries by key, least recently used out first, holding at most `max_bytes`; one entry at most a sixteenth
    of it, so one large answer never flushes what dashboards repeat."""

    def __init__(self, max_bytes: int, volatile: frozenset[str], toolset_budget: int = DEFAULTS.render_cache_bytes):
        self.max_bytes = max_bytes
        self.volatile = volatile  # lower-cased names of the functions whose answers the SQL does not decide
        self.toolset_budget = toolset_budget  # what Tinybird's parser caches may hold (rendercache.py)
        self._entries: OrderedDict[tuple, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def fits(self, size: int) -> bool:
        return size <= self.max_bytes // 16

    def put(self, key: tuple, entry: Entry) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes += entry.size - (old.size if old else 0)
            self._entries[key] = entry
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.size

    def discard(self, key: tuple, entry: Entry) -> None:
        """Drop `entry` (stale), unless another has taken its key meanwhile."""
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]
                self._bytes -= entry.size

    @property
    def bytes(self) -> int:
        return self._bytes


_shared: weakref.WeakKeyDictionary[Engine, ResultCache] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def shared_cache(engine: Engine, settings: ServerSettings) -> ResultCache:
    """The cache of every workspace on `engine`: one budget for the server, `result_cache_bytes`."""
    with _shared_lock:
        cache = _shared.get(engine)
        if cache is None:
            volatile = frozenset(name.lower() for name in non_deterministic_functions(engine)) - _DETERMINISTIC_HERE
            cache = _shared[engine] = ResultCache(settings.result_cache_bytes, volatile, settings.render_cache_bytes)
        return cache


def non_deterministic_functions(engine: Engine) -> list[str]:
    """What ClickHouse calls non-deterministic, as this chDB build lists it: asked once per build of chDB and kept
    in the cache folder (the query is 70 to 100 ms of every server start)."""
    entry = cache_dir() / "functions" / f"{chdb.__version__}-{chdb.engine_version}-non-deterministic.json"
    try:
        names = json.loads(entry.read_text())
        if isinstance(names, list) and names and all(isinstance(name, str) for name in names):
            return names
    except (OSError, ValueError):
        pass
    names = [row["name"] for row in engine.rows("SELECT name FROM system.functions WHERE deterministic = 0")]
    keep(entry, json.dumps(names))
    return names


class DataVersions:
    """A counter per datasource, bumped by each write to it, and the workspace's epoch, bumped by each build."""

    def __init__(self):
        self._counts: dict[str, int] = {}
        self._epoch = 0
        self._lock = threading.Lock()

    def current(self, datasources: Iterable[str]) -> tuple[int, ...]:
        with self._lock:
            return (self._epoch, *(self._counts.get(name, 0) for name in datasources))

    def written(self, datasources: Iterable[str]) -> None:
        with self._lock:
            for name in datasources:
                self._counts[name] = self._counts.get(name, 0) + 1

    def rebuilt(self) -> None:
        with self._lock:
            self._epoch += 1


class ReadCache:
    """One workspace's reads through the server's cache: `read` answers; `writing`/`written` and `rebuilding`
    invalidate."""

    _scopes = itertools.count()  # a workspace's own part of the keys, never reused while the process runs

    def __init__(
        self,
        cache: ResultCache,
        database: str,
        datasources: Callable[[], Mapping[str, Datasource]],
        fed_by: Callable[[str], Iterable[str]] = lambda name: (),
    ):
        self.cache = cache
        self.versions = DataVersions()
        self._scope = next(self._scopes)
        self._database = database
        self._datasources = datasources  # as the workspace now serves them
        self._fed_by = fed_by  # a datasource's name -> the targets of the materializations it feeds

    def kept(self, sql: str, fmt: str) -> bytes | None:
        """The kept answer of `sql` in `fmt` if it is still current (a hit), else None. Never blocks on a query."""
        started = time.perf_counter()
        key = self._key(sql, fmt)
        entry = self.cache.get(key)
        if entry is not None:
            if self.versions.current(entry.datasources) == entry.versions:
                return _with_elapsed(entry.body, fmt, time.perf_counter() - started)
            self.cache.discard(key, entry)
        return None

    def read(self, sql: str, fmt: str, run: Callable[[str, str], bytes]) -> tuple[bytes, str]:
        """The answer of `sql` in `fmt`, kept or from `run`, and whether it was a hit, a miss or a bypass."""
        body = self.kept(sql, fmt)
        if body is not None:
            return body, HIT
        datasources = self.sources(sql)
        if datasources is None:
            return run(sql, fmt), BYPASS
        versions = self.versions.current(datasources)
        body = run(sql, fmt)
        size = sys.getsizeof(body) + text_bytes(fmt, sql, *datasources) + _ENTRY_OVERHEAD
        if not self.cache.fits(size):
            return body, BYPASS
        if self.versions.current(datasources) == versions:  # else a write came meanwhile: keep nothing stale
            self.cache.put(self._key(sql, fmt), Entry(body, datasources, versions, size))
        return body, MISS

    def _key(self, sql: str, fmt: str) -> tuple:
        return (self._scope, fmt, sql)

    def sources(self, sql: str) -> tuple[str, ...] | None:
        """The datasources whose rows decide `sql`'s answer, or None when more than they do (see the module)."""
        datasources = self._datasources()
        known = {column.name for ds in datasources.values() for column in ds.columns}
        for word, call in _WORD.findall(_LITERAL.sub("''", sql)):
            # a bare `now` or `today` is the function too, unless it names a column
            if word.lower() in self.cache.volatile and (call or word not in known):
                return None
        charge_toolset(self.cache.toolset_budget, sql)  # Tinybird's toolset keeps what it parses (rendercache.py)
        try:
            used = sql_get_used_tables(without_hints(sql), raising=True, table_functions=True)
        except Exception:
            return None
        found = set()
        for database, table, function in used:
            # a quarantine is written with its datasource
            name = table if table in datasources else table.removesuffix(ddl.QUARANTINE_SUFFIX)
            if function or (database and (database != self._database or name not in datasources)):
                return None
            if database or name in datasources:  # any other unqualified name is a WITH's: datasources are qualified
                found.add(name)
        return tuple(sorted(found))

    @contextmanager
    def writing(self, datasource: str) -> Iterator[None]:
        """Around a write to `datasource`: once it ends (done or failed), before it is acknowledged, `written`."""
        try:
            yield
        finally:
            self.written(datasource)

    def written(self, datasource: str) -> None:
        """Rows of `datasource` changed and are visible: the answers kept over it, and over every datasource its
        materializations feed (and theirs feed, ...), are no longer current."""
        try:
            fed, todo = {datasource}, [datasource]
            while todo:
                for target in self._fed_by(todo.pop()):
                    if target not in fed:
                        fed.add(target)
                        todo.append(target)
        except Exception:  # the project changing under a build: then no answer kept is current
            self.rebuilt()
            return
        self.versions.written(fed)

    @contextmanager
    def rebuilding(self) -> Iterator[None]:
        """Around a build: once it ends (done or failed), `rebuilt`."""
        try:
            yield
        finally:
            self.rebuilt()

    def rebuilt(self) -> None:
        """Tables, pipes or secrets changed: no answer kept so far is current."""
        self.versions.rebuilt()


def _with_elapsed(body: bytes, fmt: str, seconds: float) -> bytes:
    """A kept JSON answer with the hit's own time as `statistics.elapsed` (rows_read and bytes_read stay those of
    the query that computed it)."""
    if fmt != "JSON":
        return body
    head, tail = body[:-512], body[-512:]
    return head + _ELAPSED.sub(rb"\g<1>" + f"{seconds:.9f}".encode(), tail, count=1)

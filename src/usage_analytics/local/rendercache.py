"""Rendered pipe SQL kept for the parameter sets dashboards repeat, bounded in bytes rather than in entries.

Rendering runs Tinybird's template engine and SQL parser (milliseconds); a dashboard asks for the same few
parameter sets again and again, so the SQL is kept, least recently used out first, within a byte budget: many
large parameter values cannot pin memory. Tinybird's toolset keeps caches of its own that are keyed by the whole
statement, values included, and bounded only by count (`replace_tables_chquery_cached`, an lru_cache of 8192;
`sql_get_used_tables`' LRU of 8192, keyed by the raw SQL since the chtoolset we run has no normalizer;
chtoolset's parser cache of 128 ASTs). What our statements put in them is counted too, and past the same budget
they are cleared.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict

from chtoolset import query as chquery
from tinybird.sql_toolset import replace_tables_chquery_cached, sql_get_used_tables_cache_clear

_ENTRY_OVERHEAD = 200  # the key tuple, the dict slot and the list links of one entry, roughly
# each statement we rewrite is held by tinybird's caches as input, output and parsed tree, several times over:
# about 6 copies measured (renders of distinct 60 KB values), counted as 8 to stay under the budget
_TOOLSET_COPIES = 8


def text_bytes(*texts: str) -> int:
    """What these strings take in memory (a non-ASCII character takes up to 4 bytes)."""
    return sum(sys.getsizeof(t) for t in texts)


class RenderCache:
    """SQL by key, least recently used out first, holding at most `max_bytes` (keys included)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, tuple[str, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple, sql: str, key_bytes: int) -> None:
        size = key_bytes + text_bytes(sql) + _ENTRY_OVERHEAD
        if size > self.max_bytes // 16:  # one statement never flushes most of what dashboards reuse
            return
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes += size - (old[1] if old else 0)
            self._entries[key] = (sql, size)
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def bytes(self) -> int:
        """What the entries take, keys included."""
        return self._bytes


_toolset_lock = threading.Lock()
_toolset_bytes = 0


def charge_toolset(budget: int, *texts: str) -> None:
    """Count statements just given to Tinybird's toolset; past `budget` its value-keyed caches are cleared."""
    global _toolset_bytes
    with _toolset_lock:
        _toolset_bytes += _TOOLSET_COPIES * text_bytes(*texts)
        if _toolset_bytes <= budget:
            return
        _toolset_bytes = 0
    replace_tables_chquery_cached.cache_clear()
    sql_get_used_tables_cache_clear()
    chquery.parser_cache_reset()

"""ClickHouse DDL for a project's datasources, their quarantine tables and materialized views."""

from __future__ import annotations

import re

from .engine import DATABASE
from .project import Column, Datasource

# Engine parameters that Tinybird passes positionally, in ClickHouse's order.
_ENGINE_PARAMS = {
    "ReplacingMergeTree": ("ver", "is_deleted"),
    "CollapsingMergeTree": ("sign",),
    "VersionedCollapsingMergeTree": ("sign", "version"),
    "SummingMergeTree": ("columns",),
}
_CLAUSES = (
    ("partition_key", "PARTITION BY"),
    ("sorting_key", "ORDER BY"),
    ("primary_key", "PRIMARY KEY"),
    ("sampling_key", "SAMPLE BY"),
    ("ttl", "TTL"),
    ("settings", "SETTINGS"),
)

# Tinybird writes `ENGINE_SORTING_KEY a, b`; ClickHouse needs the list as a tuple.
_KEY_EXPRESSIONS = {"partition_key", "sorting_key", "primary_key"}

QUARANTINE_SUFFIX = "_quarantine"


def table(name: str, database: str = DATABASE) -> str:
    return f"{database}.`{name}`"


def base_type(sql_type: str) -> str:
    """The type inside any Nullable(...) and LowCardinality(...) wrappers."""
    for wrapper in ("Nullable(", "LowCardinality("):
        if sql_type.startswith(wrapper):
            return base_type(sql_type[len(wrapper) : -1])
    return sql_type


def column_sql(col: Column) -> str:
    default = f" DEFAULT {col.default}" if col.default is not None else ""
    codec = f" {col.codec}" if col.codec else ""
    return f"`{col.name}` {col.sql_type}{default}{codec}"


def engine_sql(ds: Datasource) -> str:
    args = ds.engine_args
    positional = [args[p] for p in _ENGINE_PARAMS.get(ds.engine, ()) if args.get(p)]
    if ds.engine == "SummingMergeTree" and positional:
        positional = [f"({positional[0]})"]
    clauses = [f"ENGINE = {ds.engine}({', '.join(positional)})"]
    for key, keyword in _CLAUSES:
        if args.get(key):
            value = f"({args[key]})" if key in _KEY_EXPRESSIONS else args[key]
            clauses.append(f"{keyword} {value}")
    if not args.get("sorting_key") and "MergeTree" in ds.engine:
        clauses.append("ORDER BY tuple()")
    return "\n".join(clauses)


def _scan(text: str) -> list[int]:
    """Each character's nesting depth in `text`: inside parentheses, brackets or quotes it is above 0."""
    depths, depth, quote = [], 0, ""
    for at, char in enumerate(text):
        if quote:
            depths.append(1)
            quote = "" if char == quote and text[at - 1] != "\\" else quote
            continue
        if char in "'\"`":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        depths.append(depth + (1 if quote or char in ")]" else 0))
    return depths


def _top_level(text: str) -> tuple[list[str], str]:
    """`text` split at its commas outside parentheses and quotes, and each part with what is nested blanked out."""
    depths = _scan(text)
    flat = "".join(c if d == 0 else " " for c, d in zip(text, depths, strict=True))
    cuts = [at for at, c in enumerate(flat) if c == ","]
    bounds = list(zip([0, *(c + 1 for c in cuts)], [*cuts, len(text)], strict=True))
    return [text[a:b] for a, b in bounds], [flat[a:b] for a, b in bounds]


_TTL_DELETE = re.compile(r"\s+DELETE\s*$", re.IGNORECASE)
_TTL_OTHER = re.compile(r"\b(TO\s+(DISK|VOLUME)|RECOMPRESS|GROUP\s+BY|WHERE)\b", re.IGNORECASE)


def ttl_alive(ds: Datasource) -> str | None:
    """The condition a row meets while ENGINE_TTL keeps it, over the row's columns: `(expr) > now()` for each rule
    that deletes rows (`expr` or `expr DELETE`); None without such a rule. Rules that move, recompress or group rows,
    or delete only some (`... WHERE`), are left to ClickHouse's merges."""
    rules, flats = _top_level(ds.engine_args.get("ttl") or "")
    deleting = [_TTL_DELETE.sub("", rule).strip() for rule, flat in zip(rules, flats, strict=True)]
    kept = [rule for rule, flat in zip(deleting, flats, strict=True) if rule and not _TTL_OTHER.search(flat)]
    return " AND ".join(f"(({rule}) > now())" for rule in kept) or None


def index_name(index: str) -> str:
    """The name in an `INDEX name expr TYPE ... GRANULARITY n` clause."""
    return index.split()[1]


def create_table(ds: Datasource, database: str = DATABASE) -> str:
    cols = ",\n    ".join([*(column_sql(c) for c in ds.columns), *ds.indexes])
    return f"CREATE TABLE {table(ds.name, database)} (\n    {cols}\n)\n{engine_sql(ds)}"


def create_quarantine(ds: Datasource, database: str = DATABASE) -> str:
    """Tinybird's quarantine shape: every column's raw text, what failed and why, the import and when."""
    raw = ",\n    ".join(f"`{c.name}` Nullable(String)" for c in ds.columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {table(ds.name + QUARANTINE_SUFFIX, database)} (\n"
        f"    {raw},\n"
        "    `c__error_column` Array(String),\n"
        "    `c__error` Array(String),\n"
        "    `c__import_id` Nullable(String),\n"
        "    `insertion_date` DateTime\n"
        ")\nENGINE = MergeTree\nORDER BY insertion_date"
    )


def mv_name(pipe: str, node: str) -> str:
    return f"_mv__{pipe}__{node}"


def create_materialized_view(pipe: str, node: str, target: str, select_sql: str, database: str = DATABASE) -> str:
    view, into = table(mv_name(pipe, node), database), table(target, database)
    return f"CREATE MATERIALIZED VIEW {view} TO {into} AS\n{select_sql}"


def signature(ds: Datasource) -> dict:
    """What must match for a table to keep serving a datasource unchanged."""
    wanted = {"columns": [column_sql(c) for c in ds.columns], "engine": engine_sql(ds)}
    # indexes only when there are some: a table stored before INDEXES were read keeps matching its signature
    return {**wanted, "indexes": list(ds.indexes)} if ds.indexes else wanted

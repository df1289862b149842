"""ClickHouse DDL for a project's datasources, their quarantine tables and materialized views."""

from __future__ import annotations

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


def column_sql(col: Column) -> str:
    default = f" DEFAULT {col.default}" if col.default is not None else ""
    return f"`{col.name}` {col.sql_type}{default}"


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

"""NDJSON rows into a datasource, as Tinybird's Events API does: good rows land, bad rows go to quarantine.

The lines travel to ClickHouse as one Arrow column, in an Arrow stream file of the engine's spool dir; ClickHouse
extracts every jsonpath, casts it to the column's type and decides per row whether it fits. Two passes: the first
returns only the rows that do not fit (normally few) with their raw values and reasons, the second inserts the rest
in one INSERT.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from . import ddl
from .engine import DATABASE, Engine, quote_name, quote_text
from .errors import bad_request
from .lines import arrow_source, numbers, strings, text_lists, texts
from .project import Column, Datasource

_INDEX = re.compile(r"\[(\d+)\]")
_EACH = "[:]"  # a jsonpath's every element of an array
_NEVER_NULL = ("Array(", "Map(", "Tuple(")  # types ClickHouse cannot wrap in Nullable
_NUMERIC = ("Int", "UInt", "Float", "Decimal", "Bool")
# The date and time texts taken besides `YYYY-MM-DD HH:MM:SS` (which is parsed strictly, first): ISO 8601 with
# `T`, fractions and `Z` or an offset, a bare date, Unix seconds (fewer digits would be read as a date). Best-effort
# parsing alone reads other text as an instant never named (`0000-00-00` or `12:00` as this year's January 1st,
# `25:00` as the next day).
_TIME_TEXT = (
    r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?( ?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?))?)?$"
    r"|^[0-9]{9,10}$"
)
# Each type's first and last second (UTC); ClickHouse clamps an instant outside them to the nearest end.
_TIME_RANGES = {
    "DateTime": ("1970-01-01 00:00:00", "2106-02-07 06:28:15"),
    "Date": ("1970-01-01 00:00:00", "2149-06-06 23:59:59"),
    "Date32": ("1900-01-01 00:00:00", "2299-12-31 23:59:59"),
    "DateTime64": ("1900-01-01 00:00:00", "2299-12-31 23:59:59"),
}
_NANOSECONDS_END = "2262-04-11 23:47:15"  # a DateTime64(9) counts nanoseconds in an Int64, which ends sooner


@dataclass(frozen=True)
class IngestResult:
    successful_rows: int
    quarantined_rows: int
    import_id: str

    def as_json(self) -> dict:
        return {"successful_rows": self.successful_rows, "quarantined_rows": self.quarantined_rows}


def _pieces(col: Column) -> list[str]:
    """`$.a.b[0]` as `['a', 'b[0]']`; `$.tags[:]`, the whole array, as `['tags']` (`$.items[:].id` keeps its `[:]`:
    see _each)."""
    pieces = (col.jsonpath or f"$.{col.name}").removeprefix("$").strip(".").split(".")
    pieces[-1] = pieces[-1].removesuffix(_EACH)
    return [p for p in pieces if p]


def _each(pieces: list[str]) -> tuple[list[str], list[str]] | None:
    """A path through every element of an array, `items[:].id`, as the path to the array and the path inside each
    element (`['items']`, `['id']`), or None for a path without one."""
    for depth, piece in enumerate(pieces):
        if piece.endswith(_EACH):
            return [*pieces[:depth], piece.removesuffix(_EACH)], pieces[depth + 1 :]
    return None


def _source(json: str, pieces: list[str]) -> str:
    """The JSON functions' first arguments: the document, then the path's keys and indexes (none for `$`)."""
    args = _args(pieces)
    return f"{json}, {args}" if args else json


def _args(pieces: list[str]) -> str:
    """`['a', 'b[0]']` as JSONExtract arguments `'a', 'b', 1` (ClickHouse indexes arrays from 1)."""
    parts = []
    for piece in pieces:
        name = _INDEX.sub("", piece)
        if name:
            parts.append(quote_text(name))
        parts.extend(str(int(i) + 1) for i in _INDEX.findall(piece))
    return ", ".join(parts)


def _outer_pieces(col: Column) -> list[str]:
    """The path read from the row: for `$.items[:].id`, the array's own (`items`)."""
    pieces = _pieces(col)
    each = _each(pieces)
    return each[0] if each else pieces


def _extract(json: str, pieces: list[str], sql_type: str, depth: int = 0) -> str:
    """The value at `pieces` in `json` as `sql_type`; through an array (`items[:].id`), each element's value, as
    Tinybird's `[:]` reads it."""
    each = _each(pieces)
    if each is None:
        return f"JSONExtract({_source(json, pieces)}, {quote_text(sql_type)})"
    outer, inner = each
    element, item = sql_type[len("Array(") : -1], f"e{depth}"
    mapped = _extract(item, inner, element, depth + 1)
    return f"arrayMap({item} -> {mapped}, JSONExtractArrayRaw({_source(json, outer)}))"


def _objects(ds: Datasource) -> list[tuple[str, str]]:
    """The JSON objects whose keys are read, as (the path that names a key in the quarantine, JSONExtract
    arguments after `line`): the row itself and every object a jsonpath goes through."""
    objects = {"": ""}
    for col in ds.columns:
        pieces = _outer_pieces(col)  # the keys of objects inside an array are not checked
        for depth in range(1, len(pieces)):
            objects.setdefault(", " + _args(pieces[:depth]), ".".join(pieces[:depth]) + ".")
    return [(label, args) for args, label in objects.items()]


def _time_range(col: Column) -> tuple[int, str, str] | None:
    """A date or time column's precision and first and last second, or None for other columns."""
    base = ddl.base_type(col.type)
    family = base.split("(")[0]
    if family not in _TIME_RANGES:
        return None
    precision = int(base[len("DateTime64(") :].split(",")[0].rstrip(")") or 3) if family == "DateTime64" else 0
    first, last = _TIME_RANGES[family]
    return precision, first, _NANOSECONDS_END if precision == 9 else last


def _time_zone(col: Column) -> str:
    """The time zone a date and time column reads text in: its own (`DateTime64(3, 'Europe/Madrid')`), else UTC."""
    zone = re.search(r"'((?:[^'\\]|\\.)*)'", ddl.base_type(col.type))
    return quote_text(zone.group(1)) if zone else "'UTC'"


def _time_parse(col: Column, text: str, value: str, json_type: str) -> tuple[str, str]:
    precision, first, last = _time_range(col)
    zone = _time_zone(col)
    best_effort = f"parseDateTime64BestEffortOrNull({text}, {precision}, {zone})"
    parsed = f"if(match({text}, {quote_text(_TIME_TEXT)}), {best_effort}, NULL)"
    if precision <= 6:
        # the main form by a strict parse, cheaper than the pattern; it refuses hour 25 or February 30th itself.
        # It counts microseconds, which a finer precision could not convert past 2262.
        strict = f"parseDateTime64OrNull({text}, '%Y-%m-%d %H:%i:%s', {zone})"
        parsed = f"if(isNull({strict}), {parsed}, {strict})"
    if ddl.base_type(col.type).startswith("DateTime64("):
        # a JSON integer is a count of the column's ticks (milliseconds for DateTime64(3)) since 1970 UTC, as
        # Tinybird documents for DateTime64; one beyond what nanoseconds can count is not a valid value
        scale, ticks = 10 ** (9 - precision), f"accurateCastOrNull({text}, 'Int64')"
        in_range = f"abs({ticks}) <= {(2**63 - 1) // scale}"
        counted = f"if({in_range}, toDateTime64(fromUnixTimestamp64Nano({ticks} * {scale}), {precision}, {zone}), NULL)"
        parsed = f"if({json_type} IN ('Int64', 'UInt64'), {counted}, {parsed})"
    # parsed as DateTime64, which does not clamp, so a value outside the column type's range is seen
    # (assumeNotNull: a NULL fails on its own, and the condition stays a plain UInt8)
    value = f"assumeNotNull({value})"
    end = f"addSeconds(toDateTime64('{last}', 0, 'UTC'), 1)"
    return parsed, f"{value} >= toDateTime64('{first}', 0, 'UTC') AND {value} < {end}"


def _parse_expr(col: Column, text: str, value: str, source: str) -> tuple[str, str]:
    """(value expression, NULL when the text does not fit) and what else the JSON kind or the `value` must meet;
    `source` is the JSON functions' arguments that reach the value."""
    base, json_type = ddl.base_type(col.type), f"JSONType({source})"
    if base == "String":
        return text, "1"
    if _time_range(col) is not None:
        return _time_parse(col, text, value, json_type)
    if base.startswith(_NEVER_NULL):
        # these types cannot be Nullable, so the JSON kind decides whether the value fits
        kind = "Array" if base.startswith("Array(") else "Object"
        return _extract("line", _pieces(col), base), f"{json_type} = '{kind}'"
    if base.startswith("Decimal"):
        # a JSON number, or the digits as a string: Tinybird's SQL reference advises strings for 15 digits or more,
        # which a JSON number (a double) would round
        kinds = "('Int64', 'UInt64', 'Double', 'String')"
        return f"accurateCastOrNull({text}, {quote_text(base)})", f"{json_type} IN {kinds}"
    if base.startswith(_NUMERIC):
        # as Tinybird: a number column takes JSON numbers, not "3" in quotes
        kinds = f"{json_type} IN ('Int64', 'UInt64', 'Double', 'Bool')"
        if base.endswith(("128", "256")):
            # ClickHouse's JSON functions read an integer beyond 64 bits as a string, quoted or not (undocumented by
            # Tinybird): such a column takes both, as a Decimal does
            kinds = f"{json_type} IN ('Int64', 'UInt64', 'Double', 'String')"
        return f"accurateCastOrNull({text}, {quote_text(base)})", kinds
    return f"accurateCastOrNull({text}, {quote_text(base)})", "1"


@dataclass(frozen=True)
class _ColumnSQL:
    present: str
    text: str
    parse: str
    ok: str
    value: str
    error: str


def _plain_keys(col: Column) -> tuple[str, ...] | None:
    """The keys of a `$.a.b` path, or None for paths with array indexes (read one by one instead)."""
    path = col.jsonpath or f"$.{col.name}"
    if _INDEX.search(path) or _EACH in path or ddl.base_type(col.type).startswith(_NEVER_NULL):
        return None
    return tuple(k for k in path.removeprefix("$").strip(".").split(".") if k) or None  # `$`: the row itself


def _document_type(columns: tuple[Column, ...]) -> str | None:
    """One Tuple type covering every plain path, so ClickHouse parses each line once for all of them."""
    tree: dict = {}
    for col in columns:
        keys = _plain_keys(col)
        if keys:
            node = tree
            for key in keys[:-1]:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    return None  # a path that is both a value and an object: read columns one by one
            if isinstance(node.setdefault(keys[-1], None), dict):
                return None

    def render(node: dict) -> str:
        fields = [f"{quote_name(k)} {'Nullable(String)' if v is None else render(v)}" for k, v in node.items()]
        return f"Tuple({', '.join(fields)})"

    return render(tree) if tree else None


def _column_sql(i: int, col: Column, from_document: bool) -> _ColumnSQL:
    source = _source("line", _outer_pieces(col))
    json_type = f"JSONType({source})"
    if from_document:
        # the value's text from the single parse; null and missing are both NULL
        text = "doc"
        for key in _plain_keys(col):
            text = f"tupleElement({text}, {quote_text(key)})"
        present = f"({text} IS NOT NULL)"
        text = f"assumeNotNull({text})"
    else:
        present = f"({json_type} != 'Null')"
        text = f"if({json_type} = 'String', JSONExtractString({source}), JSONExtractRaw({source}))"
    parsed, kind_ok = _parse_expr(col, f"x{i}", f"v{i}", source)
    fits = kind_ok if ddl.base_type(col.type).startswith(_NEVER_NULL) else f"{kind_ok} AND v{i} IS NOT NULL"
    ok = f"if(p{i}, {fits}, {int(col.accepts_missing)})"
    # the insert reads the staged p{i} and v{i} as _tb_p{i} and _tb_v{i} and names each value for its column, so a
    # DEFAULT expression reads the row's other columns by name, as ClickHouse computes it (`DEFAULT toDate(ts)`)
    fallback = col.default if col.default is not None else f"defaultValueOfTypeName({quote_text(col.sql_type)})"
    if col.stores_null and col.default is None:
        value = f"CAST(if(_tb_p{i}, _tb_v{i}, NULL) AS {col.sql_type}) AS `{col.name}`"
    else:
        value = f"CAST(if(_tb_p{i}, assumeNotNull(_tb_v{i}), {fallback}) AS {col.sql_type}) AS `{col.name}`"
    reason = quote_text(f" is not a valid {col.type}")
    if (time_range := _time_range(col)) is not None:
        _, first, last = time_range
        outside = quote_text(f" is outside the range of {col.type}, {first} to {last} UTC")
        reason = f"if(v{i} IS NULL, {reason}, {outside})"
    value_error = f"concat({quote_text(f'column {col.name}: value ')}, x{i}, {reason})"
    missing = quote_text(f"column {col.name}: missing value ({col.type}, not Nullable, no DEFAULT)")
    error = f"if(ok{i}, '', if(p{i}, {value_error}, {missing}))"
    return _ColumnSQL(present, text, parsed, ok, value, error)


@lru_cache(maxsize=256)
def _statements(ds: Datasource) -> tuple[str, str, str]:
    """(stage the batch as parsed rows, insert the good ones, quarantine the others), over `{staged}`."""
    document = _document_type(ds.columns)
    cols = [_column_sql(i, c, document is not None and _plain_keys(c) is not None) for i, c in enumerate(ds.columns)]
    per_column = []
    for i, c in enumerate(cols):
        per_column += [f"{c.present} AS p{i}", f"{c.text} AS x{i}", f"{c.parse} AS v{i}", f"{c.ok} AS ok{i}"]
    all_ok = " AND ".join(["is_object", "unique_keys"] + [f"ok{i}" for i in range(len(cols))])
    parsed_document = f", JSONExtract(line, {quote_text(document)}) AS doc" if document else ""
    # A key given twice has no one value: ClickHouse reads the first, a JSON parser in Python the last.
    objects = _objects(ds)
    unique_keys = " AND ".join(
        f"arrayUniq(JSONExtractKeys(line{args}) AS keys{j}) = length(keys{j})" for j, (_, args) in enumerate(objects)
    )
    stage = (
        # the row's keys (keys0) exist only for a valid JSON object, so only a line without any is parsed again
        "SELECT i, line, notEmpty(keys0) OR JSONType(line) = 'Object' AS is_object"
        + f", {unique_keys} AS unique_keys"
        + parsed_document
        + ", "
        + ", ".join(per_column)
        + f", {all_ok} AS row_ok"
        # Arrow strings arrive as Nullable(String), which would make every extracted value Nullable; a line
        # cut from an NDJSON body keeps its newline (and blank lines after it), which the quarantine should not.
        # The batch's table function ends the query: ingest_lines appends it (see lines.arrow_source)
        + " FROM (SELECT i, trim(BOTH ' \\t\\r\\n' FROM assumeNotNull(raw)) AS line FROM "
    )
    names = ", ".join(f"`{c.name}`" for c in ds.columns)
    values = ", ".join(c.value for c in cols)
    staged = ", ".join(f"p{i} AS _tb_p{i}, v{i} AS _tb_v{i}" for i in range(len(cols)))
    # rows already past the datasource's TTL are not stored, as Tinybird drops them at ingest (ClickHouse would
    # keep them until a merge)
    alive = f" WHERE {ttl}" if (ttl := ddl.ttl_alive(ds)) else ""
    insert = (
        f"INSERT INTO {{target}} ({names}) SELECT {values} FROM (SELECT {staged} FROM {{staged}} WHERE row_ok){alive}"
    )
    # bytes that are not UTF-8 are stored as U+FFFD, so the quarantine (and any JSON of it) stays readable; only a
    # line that is not JSON holds such bytes (or a character cut by `substring`): other texts are from valid JSON
    raw_values = ", ".join(f"if(p{i}, toValidUTF8(x{i}), NULL)" for i in range(len(cols)))
    repeated = ", ".join(
        f"arrayMap(k -> concat({quote_text(label)}, k), arrayDistinct(arrayFilter((k, n) -> indexOf(keys{j}, k) != n, "
        f"JSONExtractKeys(line{args}) AS keys{j}, arrayEnumerate(keys{j}))))"
        for j, (label, args) in enumerate(objects)
    )
    duplicated = f"if(unique_keys, '', concat('duplicated key ', arrayStringConcat(arrayConcat({repeated}), ', ')))"
    errors = ", ".join([duplicated] + [c.error for c in cols])
    columns = ", ".join(f"if(ok{i}, '', {quote_text(c.name)})" for i, c in enumerate(ds.columns))
    # the rejected rows go from the staged table to the quarantine inside ClickHouse, in the order they came (a
    # Memory table keeps it), never through Python objects: those made a million rows cost a minute and gigabytes
    quarantine = (
        f"INSERT INTO {{quarantine}} ({names}, c__error_column, c__error, c__import_id, insertion_date) "
        f"SELECT {raw_values}, if(is_object, arrayFilter(x -> x != '', [{columns}]), []), "
        f"if(is_object, arrayFilter(x -> x != '', [{errors}]), "
        "[toValidUTF8(concat('invalid JSON object: ', substring(line, 1, 200)))]), {import_id:String}, now() "
        "FROM {staged} WHERE NOT row_ok"
    )
    return stage, insert, quarantine


def _check_takes_rows(ds: Datasource) -> None:
    """An AggregateFunction column holds partial aggregation states, which only a materialization writes: no JSON
    value is one, and ClickHouse could not even cast the batch (a 400 naming why, not a failed query)."""
    states = [c.name for c in ds.columns if ddl.base_type(c.type).startswith("AggregateFunction(")]
    if states:
        raise bad_request(
            f"Data Source '{ds.name}' does not take rows: its AggregateFunction columns ({', '.join(states)}) hold "
            "aggregation states that only its materialized pipe writes; send the rows to the datasource it reads"
        )


_STAGED_COLUMNS: dict[str, str] = {}  # a stage query's columns and their types, by the query


def ingest_lines(
    engine: Engine,
    ds: Datasource,
    lines: pa.Array | list[bytes],
    into: str | None = None,
    import_id: str | None = None,
    database: str = DATABASE,
) -> IngestResult:
    """Insert every line that fits `ds` (into its table in `database`, or the table `into`); quarantine the others.

    Nothing is dropped: each line ends up either inserted or in `<ds>_quarantine` with its reasons.
    """
    _check_takes_rows(ds)
    import_id = import_id or str(uuid.uuid4())
    if not lines:
        return IngestResult(0, 0, import_id)
    stage, insert, quarantine = _statements(ds)
    raw = lines if isinstance(lines, pa.Array) else strings(lines)
    with arrow_source(engine, {"i": numbers(np.arange(len(raw), dtype=np.uint32)), "raw": raw}) as batch:
        parse = f"{stage}{batch})"  # the stage query over this batch (_statements leaves its source open)
        # Parse once into a session-local table; both the insert and the quarantine read it. `CREATE ... AS SELECT`
        # analyzes the (long) stage query twice, for the table's columns and to run it: 15 ms of each request, so
        # only the first batch of a stage does; later ones create the table from the columns it gave.
        staged = f"_tb_ingest_{uuid.uuid4().hex}"
        columns = _STAGED_COLUMNS.get(stage)
        engine.query(
            f"CREATE TEMPORARY TABLE {staged} ({columns}) ENGINE = Memory"
            if columns
            else f"CREATE TEMPORARY TABLE {staged} ENGINE = Memory AS {parse}"
        )
        try:
            if columns:
                engine.query(f"INSERT INTO {staged} {parse}")
            else:
                described = engine.rows(f"DESCRIBE TABLE {staged}")
                if len(_STAGED_COLUMNS) >= 256:  # as many as _statements keeps: stages of datasources since changed
                    _STAGED_COLUMNS.clear()
                _STAGED_COLUMNS[stage] = ", ".join(f"{quote_name(c['name'])} {c['type']}" for c in described)
            bad = int(engine.query(f"SELECT countIf(NOT row_ok) FROM {staged}", "TSV"))
            # good rows first: if the quarantine insert then fails, the request fails and a retry
            # duplicates good rows, which at-least-once delivery allows; the reverse order would drop them
            if bad < len(raw):
                engine.query(
                    insert.replace("{staged}", staged).replace("{target}", into or ddl.table(ds.name, database))
                )
            if bad:
                target = ddl.table(ds.name + ddl.QUARANTINE_SUFFIX, database)
                sql = quarantine.replace("{staged}", staged).replace("{quarantine}", target)
                engine.query(sql, params={"import_id": import_id})
        finally:
            engine.query(f"DROP TEMPORARY TABLE IF EXISTS {staged}")
    return IngestResult(len(raw) - bad, bad, import_id)


def quarantine_rows(engine: Engine, ds: Datasource, rows: list[dict], import_id: str, database: str = DATABASE) -> None:
    columns = {c.name: texts([r[c.name] for r in rows]) for c in ds.columns}
    for name in ("c__error_column", "c__error"):
        columns[name] = text_lists([r[name] for r in rows])
    columns["c__import_id"] = texts([import_id] * len(rows))
    names = ", ".join(quote_name(n) for n in columns)
    with arrow_source(engine, columns) as batch:
        engine.query(
            f"INSERT INTO {ddl.table(ds.name + ddl.QUARANTINE_SUFFIX, database)} ({names}, insertion_date) "
            f"SELECT {names}, now() FROM {batch}"
        )

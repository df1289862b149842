"""Files for the Data Sources API (NDJSON, CSV, Parquet; gzip or not) as rows for the ingest path.

Every format becomes JSON objects, so one set of rules (ingest.py) decides what fits a column and what goes
to quarantine. NDJSON and Parquet rows are read through the columns' jsonpaths, as Tinybird reads them; CSV
fields are matched to columns by position, or by name when the first row is a header of column names.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import BinaryIO

from .pipes import bad_request
from .project import Column, Datasource

FORMATS = ("ndjson", "csv", "parquet")
CHUNK_ROWS = 200_000
_EXTENSIONS = {"ndjson": "ndjson", "jsonl": "ndjson", "json": "ndjson", "csv": "csv", "parquet": "parquet"}
_NUMERIC = ("Int", "UInt", "Float", "Decimal")
_STRUCTURED = ("Array(", "Map(", "Tuple(")


@dataclass
class Chunk:
    lines: list[bytes] = field(default_factory=list)  # rows as JSON objects
    rejected: list[dict] = field(default_factory=list)  # rows that are not rows at all, ready for quarantine


def detect_format(explicit: str | None, *names: str | None) -> str:
    """`format=` wins; then a form field named like a format (`-F csv=@file`); then a file name's extension."""
    if explicit:
        if explicit.lower() not in FORMATS:
            raise bad_request(f"Unknown format '{explicit}': use one of {', '.join(FORMATS)}")
        return explicit.lower()
    for name in names:
        if not name:
            continue
        stem = name.lower().split("?", 1)[0].removesuffix(".gz")
        if stem in FORMATS:
            return stem
        ext = stem.rsplit(".", 1)[-1] if "." in stem else ""
        if ext in _EXTENSIONS:
            return _EXTENSIONS[ext]
    return "csv"  # Tinybird's default for the Data Sources API


def _ungzipped(stream: BinaryIO) -> BinaryIO:
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
    return gzip.GzipFile(fileobj=buffered, mode="rb") if buffered.peek(2)[:2] == b"\x1f\x8b" else buffered


def positional(ds: Datasource) -> Datasource:
    """`ds` with every column read by its own name: CSV rows have no jsonpaths."""
    return replace(ds, columns=tuple(replace(c, jsonpath=None) for c in ds.columns))


def chunks(fmt: str, stream: BinaryIO, ds: Datasource, dialect: dict[str, str]) -> Iterator[Chunk]:
    """The file's rows in chunks of at most CHUNK_ROWS; CSV rows are keyed by column name (see `positional`)."""
    stream = _ungzipped(stream)
    if fmt == "ndjson":
        yield from _ndjson_chunks(stream)
    elif fmt == "csv":
        yield from _csv_chunks(stream, ds, dialect)
    else:
        yield from _parquet_chunks(stream)


def _ndjson_chunks(stream: BinaryIO) -> Iterator[Chunk]:
    chunk = Chunk()
    for line in stream:
        line = line.rstrip(b"\r\n")
        if line.strip():
            chunk.lines.append(line)
        if len(chunk.lines) >= CHUNK_ROWS:
            yield chunk
            chunk = Chunk()
    if chunk.lines:
        yield chunk


def _base(sql_type: str) -> str:
    for wrapper in ("Nullable(", "LowCardinality("):
        if sql_type.startswith(wrapper):
            return _base(sql_type[len(wrapper) : -1])
    return sql_type


def _csv_value(col: Column, text: str):
    """A CSV field as the JSON value the column expects; text that fits no such value stays text (and is
    quarantined by the ingest rules, with the column and the reason)."""
    base = _base(col.type)
    if text == "":
        return "" if base == "String" and not col.accepts_missing else None
    if base.startswith(_NUMERIC):
        for parse in (int, float):
            try:
                number = parse(text)
            except ValueError:
                continue
            return number if math.isfinite(number) else text
        return text
    if base == "Bool":
        return {"true": True, "1": True, "false": False, "0": False}.get(text.lower(), text)
    if base.startswith(_STRUCTURED):
        for parse in (json.loads, ast.literal_eval):  # ["a","b"] as JSON, ['a','b'] as ClickHouse writes it
            try:
                return parse(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
    return text


def _csv_chunks(stream: BinaryIO, ds: Datasource, dialect: dict[str, str]) -> Iterator[Chunk]:
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    options = {"delimiter": dialect.get("delimiter") or ","}
    if dialect.get("escapechar"):
        options["escapechar"] = dialect["escapechar"]
    for key, value in options.items():
        if len(value) != 1:
            raise bad_request(f"dialect_{key} must be one character, got '{value}'")
    reader = csv.reader(text, **options)
    names = [c.name for c in ds.columns]
    columns = list(ds.columns)
    chunk, first = Chunk(), True
    try:
        for number, fields in enumerate(reader, start=1):
            if not fields or fields == [""]:
                continue
            if first:
                first = False
                if set(fields) == set(names) and len(fields) == len(names):  # a header of column names
                    order = {c.name: c for c in ds.columns}
                    columns = [order[f] for f in fields]
                    continue
            if len(fields) != len(columns):
                raw = dict(zip((c.name for c in columns), fields, strict=False))
                chunk.rejected.append(
                    {
                        **{n: raw.get(n) for n in names},
                        "c__error_column": [],
                        "c__error": [f"CSV row {number} has {len(fields)} fields, expected {len(columns)}"],
                    }
                )
            else:
                row = {c.name: _csv_value(c, v) for c, v in zip(columns, fields, strict=True)}
                row = {k: v for k, v in row.items() if v is not None}
                chunk.lines.append(json.dumps(row, ensure_ascii=False).encode())
            if len(chunk.lines) + len(chunk.rejected) >= CHUNK_ROWS:
                yield chunk
                chunk = Chunk()
    except csv.Error as exc:
        raise bad_request(f"The CSV file cannot be read at line {reader.line_num}: {exc}") from None
    if chunk.lines or chunk.rejected:
        yield chunk


def _json_default(value):
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f" if value.microsecond else "%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot represent {type(value).__name__} in a row")


def _parquet_chunks(stream: BinaryIO) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stream if stream.seekable() else io.BytesIO(stream.read()))
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            yield Chunk(lines=[json.dumps(r, default=_json_default).encode() for r in batch.to_pylist()])
    except (pa.ArrowException, OSError) as exc:
        raise bad_request(f"The file is not a readable Parquet file: {exc}") from None

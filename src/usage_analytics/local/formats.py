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
import itertools
import json
import math
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import BinaryIO
from uuid import UUID

from . import ddl
from .bodies import size_text
from .errors import PayloadTooLarge, bad_request
from .project import Column, Datasource
from .settings import DEFAULTS, ServerSettings

FORMATS = ("ndjson", "csv", "parquet")
CHUNK_ROWS = 200_000
CHUNK_BYTES = 64 * 1024 * 1024  # and at most this much text a chunk, so a file of long rows also goes in batches
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


class _Bounded(io.RawIOBase):
    """A file's bytes as read (inflated, when it is gzipped), refused with a 413 once past `limit`: a Data Sources
    API file is bounded by what it holds, whatever it was sent as. A gzip stream that breaks off is a 400."""

    def __init__(self, inner: BinaryIO, limit: int):
        self._inner, self._limit, self._position = inner, limit, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._inner.seekable()

    def readinto(self, buffer) -> int:
        try:
            count = self._inner.readinto(buffer)
        except (OSError, EOFError, zlib.error) as exc:
            raise bad_request(f"The file cannot be read: {exc}") from None
        self._moved(self._position + count)
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._moved(self._inner.seek(offset, whence))
        return self._position

    def tell(self) -> int:
        return self._position

    def _moved(self, position: int) -> None:
        self._position = position
        if position > self._limit:
            raise PayloadTooLarge(f"The file exceeds the {size_text(self._limit)} limit of the Data Sources API")


def _ungzipped(stream: BinaryIO, limit: int) -> BinaryIO:
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
    gzipped = buffered.peek(2)[:2] == b"\x1f\x8b"
    return io.BufferedReader(_Bounded(gzip.GzipFile(fileobj=buffered, mode="rb") if gzipped else buffered, limit))


def _lines(stream: BinaryIO, max_line: int) -> Iterator[tuple[int, bytes | None]]:
    """(number, line) for every line of the file, newline kept; None for a line longer than `max_line`, which is
    skipped a bounded piece at a time, never read whole."""
    for number in itertools.count(1):
        line = stream.readline(max_line + 1)
        if not line:
            return
        if len(line) > max_line and not line.endswith(b"\n"):
            while (rest := stream.readline(1024 * 1024)) and not rest.endswith(b"\n"):
                pass
            yield number, None
        else:
            yield number, line


def _too_long(ds: Datasource, what: str, max_line: int) -> dict:
    """A row for quarantine in place of a line too long to read."""
    error = f"{what} is longer than the {size_text(max_line)} limit of one row"
    return {**{c.name: None for c in ds.columns}, "c__error_column": [], "c__error": [error]}


def positional(ds: Datasource) -> Datasource:
    """`ds` with every column read by its own name: CSV rows have no jsonpaths."""
    return replace(ds, columns=tuple(replace(c, jsonpath=None) for c in ds.columns))


def chunks(
    fmt: str, stream: BinaryIO, ds: Datasource, dialect: dict[str, str], limits: ServerSettings = DEFAULTS
) -> Iterator[Chunk]:
    """The file's rows in chunks of at most CHUNK_ROWS and CHUNK_BYTES, so a file of any size (up to
    `limits.max_import_bytes` once inflated) is read in bounded memory; CSV rows are keyed by column name (see
    `positional`); a line over `limits.max_line_bytes` is quarantined unread."""
    stream = _ungzipped(stream, limits.max_import_bytes)
    if fmt == "ndjson":
        yield from _ndjson_chunks(stream, ds, limits.max_line_bytes)
    elif fmt == "csv":
        yield from _csv_chunks(stream, ds, dialect, limits.max_line_bytes)
    else:
        yield from _parquet_chunks(stream)


def _full(chunk: Chunk, size: int) -> bool:
    return len(chunk.lines) + len(chunk.rejected) >= CHUNK_ROWS or size >= CHUNK_BYTES


def _ndjson_chunks(stream: BinaryIO, ds: Datasource, max_line: int) -> Iterator[Chunk]:
    chunk, size = Chunk(), 0
    for number, line in _lines(stream, max_line):
        if line is None:
            chunk.rejected.append(_too_long(ds, f"Line {number}", max_line))
        elif line.strip():
            chunk.lines.append(line.rstrip(b"\r\n"))
            size += len(line)
        if _full(chunk, size):
            yield chunk
            chunk, size = Chunk(), 0
    if chunk.lines or chunk.rejected:
        yield chunk


def _csv_value(col: Column, text: str):
    """A CSV field as the JSON value the column expects; text that fits no such value stays text (and is
    quarantined by the ingest rules, with the column and the reason)."""
    base = ddl.base_type(col.type)
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


def _csv_chunks(stream: BinaryIO, ds: Datasource, dialect: dict[str, str], max_line: int) -> Iterator[Chunk]:
    skipped: list[int] = []  # numbers of the lines too long to read: each is quarantined in place of its row

    def text() -> Iterator[str]:
        for number, line in _lines(stream, max_line):
            if line is None:
                skipped.append(number)
            else:
                # a newline never splits a UTF-8 character; spreadsheet tools start the file with a byte order
                # mark, which must not become part of the first header name (or the first value)
                yield line.decode("utf-8-sig" if number == 1 else "utf-8", "replace")

    def take_skipped() -> None:
        chunk.rejected.extend(_too_long(ds, f"CSV line {n}", max_line) for n in skipped)
        skipped.clear()

    options = {"delimiter": dialect.get("delimiter") or ","}
    if dialect.get("escapechar"):
        options["escapechar"] = dialect["escapechar"]
    for key, value in options.items():
        if len(value) != 1:
            raise bad_request(f"dialect_{key} must be one character, got '{value}'")
    reader = csv.reader(text(), **options)
    names = [c.name for c in ds.columns]
    columns = list(ds.columns)
    chunk, first, size = Chunk(), True, 0
    try:
        for number, fields in enumerate(reader, start=1):
            take_skipped()
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
                size += len(chunk.lines[-1])
            if _full(chunk, size):
                yield chunk
                chunk, size = Chunk(), 0
    except csv.Error as exc:
        raise bad_request(f"The CSV file cannot be read at line {reader.line_num}: {exc}") from None
    take_skipped()
    if chunk.lines or chunk.rejected:
        yield chunk


def _json_default(value):
    """A Parquet value that JSON has no type for, as the text or number a column of the matching type reads;
    whether it fits the column is then decided by the ingest rules, as for any other value."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # a timestamp with a time zone: the instant, in the UTC the server stores
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f" if value.microsecond else "%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):  # a time of day: 'HH:MM:SS[.ffffff]'
        return value.replace(tzinfo=None).isoformat()
    if isinstance(value, timedelta):  # a duration: seconds, as ClickHouse counts an interval
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"cannot represent {type(value).__name__} in a row")


def _spooled(stream: BinaryIO) -> BinaryIO:
    """A stream that cannot seek (a URL) copied to a temporary file: Parquet is read from its end."""
    file = tempfile.SpooledTemporaryFile(max_size=CHUNK_BYTES)  # noqa: SIM115 - lives as long as the import
    shutil.copyfileobj(stream, file)
    file.seek(0)
    return file


def _parquet_chunks(stream: BinaryIO) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stream if stream.seekable() else _spooled(stream))
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            yield Chunk(lines=[json.dumps(r, default=_json_default).encode() for r in batch.to_pylist()])
    except (pa.ArrowException, OSError) as exc:
        raise bad_request(f"The file is not a readable Parquet file: {exc}") from None
    except (ArithmeticError, ValueError, TypeError) as exc:  # a date past year 9999, a type JSON cannot carry
        raise bad_request(f"The Parquet file holds a value no row can carry: {exc}") from None

"""An Events API body's rows as one Arrow array over the body's own bytes, and Arrow columns on their way into a
query (as a file: chDB's Python() table function, which reads them in place, imports pandas at its first use).

Arrays are built from their buffers, never by pa.array(), which imports pandas too (0.5 to 1 s of each server start,
and 40 MB) to ask whether its input is a pandas object.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from .engine import Engine, EngineError, quote_text

_NOT_BLANK = np.ones(256, dtype=bool)
_NOT_BLANK[[0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C]] = False  # the bytes bytes.strip() takes away
_READ_ONE_BY_ONE = 1024  # lines that start with whitespace, looked into one by one up to this many


def ndjson_lines(body: bytes) -> pa.Array:
    """The non-blank lines of an NDJSON body as one Arrow string array over the body's own bytes: no line is
    copied or decoded in Python. Each line keeps its newline and any blank lines after it, which JSON reads as
    whitespace; bytes that are not UTF-8 reach ClickHouse as they are, and their line goes to quarantine."""
    data = np.frombuffer(body, dtype=np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(data == 0x0A) + 1))
    starts = starts[:-1] if starts[-1] == len(data) else starts  # no line begins after a final newline
    # a line whose first byte is not whitespace is not blank, so only the others (normally none) are read through:
    # a pass over every byte cost ten times the rest of the split
    doubtful = np.flatnonzero(~_NOT_BLANK[data[starts]])
    if len(doubtful) > _READ_ONE_BY_ONE:
        kept = np.logical_or.reduceat(_NOT_BLANK[data], starts) if len(starts) else starts.astype(bool)
    else:
        kept = np.ones(len(starts), dtype=bool)
        ends = np.append(starts[1:], len(data))
        for line in doubtful.tolist():
            kept[line] = bool(body[starts[line] : ends[line]].strip())
    starts = starts[kept]
    if not len(starts):
        return strings([])
    offsets = np.append(starts, len(data)).astype(np.int64)
    offsets[0] = 0
    return pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(body))


def strings(lines: list[bytes]) -> pa.Array:
    """The lines as Arrow strings without a UTF-8 check (as ndjson_lines): ClickHouse judges each line."""
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)), out=offsets[1:])
    return pa.LargeStringArray.from_buffers(len(lines), pa.py_buffer(offsets), pa.py_buffer(b"".join(lines)))


def texts(values: list[str | None]) -> pa.Array:
    """Strings, None as null."""
    encoded = strings([b"" if v is None else v.encode() for v in values])
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    if valid.all():
        return encoded
    _, offsets, data = encoded.buffers()
    nulls = int(len(values) - valid.sum())
    return pa.LargeStringArray.from_buffers(
        len(values), offsets, data, pa.py_buffer(np.packbits(valid, bitorder="little")), nulls
    )


def numbers(values: np.ndarray) -> pa.Array:
    """A numpy array of fixed-width numbers as an Arrow array over the same memory."""
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def text_lists(values: list[list[str]]) -> pa.Array:
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, values), dtype=np.int32, count=len(values)), out=offsets[1:])
    return pa.ListArray.from_arrays(numbers(offsets), texts([text for row in values for text in row]))


@contextlib.contextmanager
def arrow_source(engine: Engine, columns: dict[str, pa.Array]) -> Iterator[str]:
    """The columns as a table function for one query: an Arrow stream file in the engine's spool dir, removed after.
    chDB's Python() table function would read them in place, but it imports pandas at its first use."""
    path = engine.spool / f"{uuid.uuid4().hex}.arrow"
    table = pa.Table.from_arrays(list(columns.values()), names=list(columns))
    try:
        try:
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
        except OSError as exc:  # a full disk (507, as ClickHouse's own) or a spool dir taken away: nothing stored yet
            reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__  # no path of the server's
            raise EngineError(f"cannot stage the batch: {reason}") from None
        yield f"file({quote_text(str(path))}, 'ArrowStream')"
    finally:
        with contextlib.suppress(OSError):  # never written (no spool dir); else left for the next start to empty
            path.unlink(missing_ok=True)


class _RepeatedKeys(dict):
    """A JSON object with a key given twice; written out again with every pair, so the ingest rules see it."""

    def __init__(self, pairs: list[tuple]):
        super().__init__(pairs)
        self.pairs = pairs

    def items(self):
        return self.pairs


def _json_object(pairs: list[tuple]) -> dict:
    """json.loads would keep a repeated key's last value and drop the others without a word."""
    obj = dict(pairs)
    return obj if len(obj) == len(pairs) else _RepeatedKeys(pairs)


_CONTENT = re.compile(rb"\S")  # the same six ASCII spaces as bytes.strip()


def _several_documents(body: bytes) -> bool:
    """Whether the first line is a whole JSON document and something follows it: NDJSON, which a parse of the
    whole body would only find out at the second line, after decoding all of it."""
    end = body.find(b"\n")
    if end < 0 or not _CONTENT.search(body, end):
        return False
    try:
        json.loads(body[:end])
    except (ValueError, RecursionError):
        return False
    return True


def split_lines(body: bytes) -> pa.Array | list[bytes]:
    """The rows of an Events API body: NDJSON, or one JSON array of objects, or one (pretty-printed) object."""
    head = body[:64].lstrip()[:1] or body.lstrip()[:1]
    if head in (b"[", b"{") and not _several_documents(body):
        try:
            document = json.loads(body, object_pairs_hook=_json_object)
        except (ValueError, RecursionError):
            document = None  # NDJSON (several documents), or broken lines that quarantine one by one
        # each row goes on as ASCII JSON, escapes kept: a lone UTF-16 surrogate (`\ud800`), which no UTF-8
        # can hold, reaches ClickHouse as the escape it was, and quarantines its row as it would on an NDJSON line
        if isinstance(document, list):
            return [json.dumps(item).encode() for item in document]
        if isinstance(document, dict):
            return [json.dumps(document).encode()]
    return ndjson_lines(body)

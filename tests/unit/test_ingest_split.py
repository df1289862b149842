"""How an Events API body is cut into rows before ClickHouse reads them (local/lines.py), in process: every
non-blank line exactly once and in order, whatever whitespace surrounds it, and a body that is one JSON document
told apart from NDJSON without parsing all of it."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest

from usage_analytics.local import lines as splitter

SPACES = b" \t\r\n\x0b\x0c"


def expected_lines(body: bytes) -> list[bytes]:
    """The rows as a reader of NDJSON sees them: each line that holds more than whitespace, stripped."""
    return [line.strip() for line in body.split(b"\n") if line.strip()]


def check(body: bytes) -> pa.Array:
    lines = splitter.ndjson_lines(body)
    got = [line.as_buffer().to_pybytes().strip() for line in lines.cast(pa.large_binary())]
    assert got == expected_lines(body), body
    if len(lines):  # the lines cover the body end to end: nothing dropped between them, nothing copied
        offsets = lines.buffers()[1].to_pybytes()
        assert int.from_bytes(offsets[:8], "little") == 0
        assert int.from_bytes(offsets[-8:], "little") == len(body)
    return lines


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n",
        b" \t\r\n\x0b\x0c\n\n",
        b'{"a":1}',
        b'{"a":1}\n',
        b'\n\n{"a":1}\n\n{"a":2}\n\n',
        b'  {"a":1}\n\t{"a":2}\r\n \n{"a":3}',
        b'{"a":1}\r\n\r\n{"a":2}\r\n',
        b"\x0c x\n\x0by\n \xff\xfe\n",
    ],
)
def test_each_line_that_holds_more_than_whitespace_is_a_row(body):
    check(body)


def test_bodies_of_random_whitespace_and_lines_split_as_a_reader_would():
    rnd = random.Random(18)
    for _ in range(2000):
        check(bytes(rnd.choice(SPACES + b"{}x") for _ in range(rnd.randint(0, 16))))


def test_many_lines_led_by_whitespace_are_read_in_one_pass_with_the_same_rows(monkeypatch):
    rnd = random.Random(7)
    body = b"".join(rnd.choice([b' {"a":1}\n', b"  \n", b"\t\r\n", b'{"b":2}\n', b"\n"]) for _ in range(3000))
    one_by_one = check(body)
    monkeypatch.setattr(splitter, "_READ_ONE_BY_ONE", 0)
    in_one_pass = check(body)
    assert in_one_pass.equals(one_by_one)
    assert in_one_pass.buffers()[1].to_pybytes() == one_by_one.buffers()[1].to_pybytes()


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        (b'{"a":1}\n{"a":2}', 2),  # NDJSON: the first line is a whole document and more follows
        (b'{"a":1}\n\n  \n{"a":2}\n', 2),
        (b'{"a":1}\nnot json', 2),  # the second row is quarantined later, the first still lands
        (b'[{"a":1}]\n[{"a":2}]', 2),
        (b'{"a":\n1}\n{"a":2}', 3),  # the first line is not whole: still lines, once the whole body fails to parse
    ],
)
def test_ndjson_stays_lines(body, rows):
    lines = splitter.split_lines(body)
    assert isinstance(lines, pa.Array) and len(lines) == rows


@pytest.mark.parametrize(
    ("body", "documents"),
    [
        (b'{"a":1}', [{"a": 1}]),
        (b'{"a":1}\n \n', [{"a": 1}]),  # one object and trailing blank lines: one document
        (b'{\n  "a": 1,\n  "b": "x"\n}\n', [{"a": 1, "b": "x"}]),  # pretty-printed
        (b'\n[{"a":1},\n {"a":2}]', [{"a": 1}, {"a": 2}]),
    ],
)
def test_one_json_document_is_read_whole(body, documents):
    rows = splitter.split_lines(body)
    assert isinstance(rows, list) and [json.loads(row) for row in rows] == documents

"""Every request is bounded: bodies before and after inflating, line length, URL and parameter size, cache bytes.

A hostile request (a gzip bomb, a body that never ends, one endless line in a file, a JSON nested past any
parser, thousands of distinct large parameter values) gets Tinybird's error shape and costs the server no more
memory than its limits allow: the tests read the server's own resident memory (/proc/<pid>/status) around it.
Memory tests come first (the one of memory kept, first of all), while no earlier request has left freed memory
that an attack could reuse unseen.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from pathlib import Path

import pytest
from conftest import ROOT, ServerProcess, event, slice_project

from usage_analytics.local import formats, load_project
from usage_analytics.local.errors import RequestError
from usage_analytics.local.pipes import PipeRenderer
from usage_analytics.local.rendercache import RenderCache
from usage_analytics.local.settings import ServerSettings

pytestmark = pytest.mark.embedded
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    process = ServerProcess(slice_project(root / "project"), root / "data")
    target = process.start()
    yield process, target
    process.stop()


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def peak_growth_mb(process: ServerProcess, attack):
    """What `attack()` returns, and how far above its resident memory before it the server's peak went."""
    pid = process.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak (VmHWM) starts again from the current size
    before = memory_mb(pid, "VmRSS")
    result = attack()
    return result, memory_mb(pid, "VmHWM") - before


def post_events(target, body, **headers):
    return target.http.post(
        target.url("/v0/events"),
        params={"name": "events", "wait": "true"},
        data=body,
        headers={**target.auth(), **headers},
    )


def gzip_of_repeats(piece: bytes, times: int) -> bytes:
    """`piece * times` gzipped as `times` members one after another: a gzip bomb built in a millisecond."""
    return gzip.compress(piece, 9) * times


def deflate_of_newlines(size: int) -> bytes:
    deflater = zlib.compressobj(9)
    return b"".join(deflater.compress(b"\n" * MiB) for _ in range(size // MiB)) + deflater.flush()


@pytest.mark.slow  # a memory harness: 130 MB of requests, RSS read before and after (`make test-slow`)
def test_many_distinct_large_parameters_do_not_pin_memory(server):
    process, target = server
    tokens = target.http.get(target.url("/v0/tokens"), headers=target.auth()).json()["tokens"]
    analyst = next(t["token"] for t in tokens if t["name"] == "analyst")  # a read-only token is enough
    headers = {"Authorization": f"Bearer {analyst}", "Content-Type": "application/json"}
    pid = process.proc.pid
    before = memory_mb(pid, "VmRSS")
    for i in range(150):  # 130 MB of distinct values: a declared one rendered into SQL, and undeclared ones
        values = {name: f"{i:05d}{name}" + "v" * 60_000 for name in ["feature"] + [f"unknown_{j}" for j in range(14)]}
        response = target.http.post(
            target.url("/v0/pipes/feature_usage.json"), data=json.dumps(values), headers=headers
        )
        assert response.status_code == 200, response.text
    growth = memory_mb(pid, "VmRSS") - before
    # the rendered-SQL cache holds 32 MiB, Tinybird's toolset as much again: about 90 MB here in all, where the
    # caches bounded by count kept 250 MB (and kept growing with every request)
    assert growth < 160, f"the server kept {growth:.0f} MB after 150 requests of distinct parameters"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_bomb_is_refused_at_the_limit_without_being_inflated_whole(server, encoding):
    process, target = server
    body = gzip_of_repeats(b"\n" * MiB, 256) if encoding == "gzip" else deflate_of_newlines(256 * MiB)
    assert len(body) < MiB  # 256 MiB of newlines
    response, growth = peak_growth_mb(process, lambda: post_events(target, body, **{"Content-Encoding": encoding}))
    assert response.status_code == 413
    assert "10 MB" in response.json()["error"] and "inflated" in response.json()["error"]
    assert growth < 64, f"the server grew by {growth:.0f} MB inflating a 256 MiB bomb"


def test_a_body_without_length_is_refused_once_past_the_limit_not_read_whole(server):
    process, target = server

    def endless():  # chunked transfer, no Content-Length: 128 MiB unless the server stops reading
        for _ in range(128):
            yield b"{}\n" * (MiB // 3)

    response, growth = peak_growth_mb(process, lambda: post_events(target, endless()))
    assert response.status_code == 413 and "10 MB" in response.json()["error"]
    assert growth < 64, f"the server grew by {growth:.0f} MB reading a body it refuses"


def test_a_line_longer_than_the_limit_is_quarantined_unread_and_the_rest_of_the_file_loads(server):
    process, target = server
    good = [json.dumps(event(event_id=f"long-{i}")).encode() + b"\n" for i in range(2)]
    endless_line = gzip.compress(b'{"event_id": "') + gzip_of_repeats(b"x" * MiB, 128) + gzip.compress(b'"}\n')
    file = gzip.compress(good[0]) + endless_line + gzip.compress(good[1])

    def upload():
        files = {"ndjson": ("events.ndjson.gz", file)}
        url = target.url("/v0/datasources")
        return target.http.post(url, params={"name": "events"}, files=files, headers=target.auth())

    response, growth = peak_growth_mb(process, upload)
    assert response.status_code == 200, response.text
    assert (response.json()["statistics"]["row_count"], response.json()["quarantine_rows"]) == (2, 1)
    (stored,) = target.sql(
        "SELECT c__error FROM events_quarantine WHERE c__import_id = '" + response.json()["id"] + "'"
    )
    assert stored["c__error"] == ["Line 2 is longer than the 10 MB limit of one row"]
    assert growth < 96, f"the server grew by {growth:.0f} MB reading a 128 MiB line it skips"


def test_parameters_and_bodies_over_their_limits_get_tinybirds_errors(server):
    _, target = server
    url = target.url("/v0/pipes/feature_usage.json")
    json_body = {**target.auth(), "Content-Type": "application/json"}
    too_long = target.http.get(url, params={"feature": "x" * 12_000}, headers=target.auth())
    assert too_long.status_code == 414 and "8 KB" in too_long.json()["error"]
    big_value = target.http.post(url, data=json.dumps({"feature": "x" * 70_000}), headers=json_body)
    assert big_value.status_code == 413 and "'feature'" in big_value.json()["error"]
    big_body = target.http.post(url, data=json.dumps({"feature": "x" * (2 * MiB)}), headers=json_body)
    assert big_body.status_code == 413 and "1 MB" in big_body.json()["error"]
    deep = target.http.post(url, data="[" * 100_000 + "]" * 100_000, headers=json_body)
    assert deep.status_code == 400 and deep.json()["error"]


@pytest.mark.parametrize("encoding", ["br", "zstd"])
def test_an_encoding_the_server_cannot_inflate_is_415(server, encoding):
    _, target = server
    response = post_events(target, b"\x1b\x00\x00", **{"Content-Encoding": encoding})
    assert response.status_code == 415 and encoding in response.json()["error"]


def test_a_multipart_body_without_a_boundary_is_a_json_400(server):
    _, target = server
    response = target.http.post(
        target.url("/v0/datasources"),
        params={"name": "events"},
        data=b"--x\r\n",
        headers={**target.auth(), "Content-Type": "multipart/form-data"},
    )
    assert response.status_code == 400 and "boundary" in response.json()["error"]


def test_a_compressed_body_of_empty_objects_is_quarantined_whole_with_every_reason(server):
    """300k `{}` lines in a few KB of gzip: each rejected row goes from the staging table to the quarantine
    inside ClickHouse (it went through Python objects one by one, 50x slower than inserting; BENCHMARKS.md)."""
    _, target = server
    response = post_events(target, gzip.compress(b"{}\n" * 300_000), **{"Content-Encoding": "gzip"})
    assert response.json() == {"successful_rows": 0, "quarantined_rows": 300_000}
    # every row lacks every column: one reason for each column without a DEFAULT, as Tinybird gives them
    required = sum(c.default is None for c in load_project(ROOT).datasources["events"].columns)
    reasons = target.sql(f"SELECT countIf(length(c__error) = {required}) AS n FROM events_quarantine")
    assert reasons == [{"n": 300_000}]


def test_a_file_import_is_bounded_once_inflated_whatever_it_was_sent_as():
    ds = load_project(ROOT).datasources["events"]
    lines = b"".join(json.dumps(event(event_id=str(i))).encode() + b"\n" for i in range(1000))
    limits = ServerSettings(max_import_bytes=len(lines) - 1)
    for sent in (lines, gzip.compress(lines)):
        with pytest.raises(RequestError) as refused:
            list(formats.chunks("ndjson", io.BytesIO(sent), ds, {}, limits))
        assert refused.value.status == 413
    assert sum(len(c.lines) for c in formats.chunks("ndjson", io.BytesIO(lines), ds, {})) == 1000


def test_the_render_cache_keys_on_declared_parameters_only_and_holds_its_budget():
    pipe = load_project(ROOT).endpoints["feature_usage"]
    cache = RenderCache(max_bytes=4 * MiB)
    renderer = PipeRenderer(pipe, lambda name, values: ("tb", name), cache)
    first = renderer.render({"feature": "a", "undeclared": "1"})
    assert renderer.render({"feature": "a", "undeclared": "2"}) is first  # the same entry: not keyed on it
    for i in range(100):  # 6 MB of statements
        renderer.render({"feature": f"{i}" + "v" * 30_000})
    assert 3 * MiB < cache.bytes <= cache.max_bytes

"""Hostile and mistaken conditions, atomic replace and delete, and the limits of every query (issue 14, 1-3, 6, 8).

A caller's condition is one expression over its own datasource's columns: no table functions, no other tables,
no file output, and only on a replace or a delete. A replace or delete either happens whole or changes nothing,
and readers see the data before it or after it, never a state in between. Every query a request runs is
bounded in time, memory and result size, with Tinybird's error shapes.
"""

from __future__ import annotations

import threading

import pytest
import requests
from conftest import ROOT, ServerProcess, count, run_cli, slice_project
from test_datasources_api import api_row, assert_rollups_agree, ndjson, post_file

from usage_analytics.local.pipes import PipeRenderer
from usage_analytics.local.project import Node, Pipe

pytestmark = pytest.mark.embedded

WHOLE_WINDOW = {"start_date": "2000-01-01 00:00:00", "end_date": "2100-01-01 00:00:00", "limit": "10000"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(ROOT, tmp_path_factory.mktemp("conditions") / "data")
    target = process.start()
    yield target
    process.stop()


@pytest.fixture(scope="module")
def ingest_token(server) -> str:
    return run_cli(server, "token", "show", "ingest").stdout.strip()


def leaks(answer: requests.Response, server) -> bool:
    return server.token in answer.text or "root:" in answer.text


@pytest.mark.parametrize(
    "condition",
    [
        "toUInt8((SELECT groupArray(line) FROM url('{host}/tokens', 'LineAsString'))[1])",
        "toUInt8((SELECT groupArray(line) FROM file('/etc/passwd', 'LineAsString'))[1])",
        "file('/etc/passwd') != ''",
        "tenant_id IN (SELECT tenant_id FROM api_logs_quarantine)",
        "toUInt8((SELECT any(name) FROM system.tables))",
    ],
)
def test_the_ingest_token_cannot_read_through_a_condition(server, ingest_token, condition):
    condition = condition.format(host=server.base_url)
    for mode, status in (("append", 400), ("replace", 403)):
        answer = server.http.post(
            server.url("/v0/datasources"),
            params={"name": "tenant_rate_limits", "mode": mode, "format": "ndjson", "replace_condition": condition},
            data=b'{"tenant_id":"x"}',
            headers=server.auth(ingest_token),
        )
        assert answer.status_code == status, answer.text
        assert not leaks(answer, server)
        if mode == "append":
            assert "replace_condition" in answer.json()["error"]


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("toUInt8((SELECT groupArray(line) FROM url('{host}/tokens', 'LineAsString'))[1])", "url"),
        ("file('/etc/passwd') != ''", "file"),
        ("tenant_id IN (SELECT tenant_id FROM tb.api_logs_quarantine)", "only the columns of api_logs"),
        ("user_id IN (SELECT name FROM system.tables)", "only the columns of api_logs"),
        ("1) OR (1", "parentheses"),
        ("1) SETTINGS readonly = 0 --", "parentheses"),
        ("1 INTO OUTFILE '/tmp/x'", "OUTFILE"),
    ],
)
def test_admin_conditions_read_only_their_own_datasource(server, condition, reason):
    condition = condition.format(host=server.base_url)
    before = count(server, "api_logs")
    for url, field in (("/v0/datasources/api_logs/delete", "delete_condition"), ("/v0/datasources", None)):
        if field:
            answer = server.http.post(server.url(url), data={field: condition}, headers=server.auth())
        else:
            params = {"name": "api_logs", "mode": "replace", "replace_condition": condition}
            answer = post_file(server, params, "ndjson", "r.ndjson", ndjson([api_row(1)]))
        assert answer.status_code == 400, answer.text
        assert reason in answer.json()["error"] and not leaks(answer, server)
    assert count(server, "api_logs") == before


def test_a_condition_that_fails_on_stored_rows_changes_nothing(server):
    """The condition holds for the file's rows but not for the stored ones (their session ids are not numbers)."""
    condition = "toUInt32(session_id) < 100 AND startsWith(event_id, 'hx-k-')"
    rows = [
        {"event_id": f"hx-k-{i}", "user_id": "u", "session_id": str(i), "event_type": "click", "feature": "f"}
        | {"timestamp": "2025-05-01 10:00:00", "device_type": "d", "browser": "b", "os": "o", "location": "l"}
        | {"metadata": "{}"}
        for i in range(3)
    ]
    before = count(server, "app_events")
    answer = post_file(
        server,
        {"name": "app_events", "mode": "replace", "replace_condition": condition},
        "ndjson",
        "a.ndjson",
        ndjson(rows),
    )
    assert answer.status_code == 400 and "replace_condition" in answer.json()["error"], answer.text
    assert count(server, "app_events") == before
    # nothing was left half done: a later delete and a later conditional replace work
    url = server.url("/v0/datasources/app_events/delete")
    deleted = server.http.post(url, data={"delete_condition": "event_id = 'evt_00000000'"}, headers=server.auth())
    assert deleted.status_code == 200 and deleted.json()["rows_affected"] == 1, deleted.text
    condition = "startsWith(event_id, 'hx-k-')"
    params = {"name": "app_events", "mode": "replace", "replace_condition": condition}
    replaced = post_file(server, params, "ndjson", "a.ndjson", ndjson(rows))
    assert replaced.status_code == 200 and replaced.json()["statistics"]["row_count"] == 3, replaced.text
    assert count(server, "app_events") == before - 1 + 3


def total_requests(server) -> int:
    return sum(r["request_count"] for r in server.data("api_usage_by_tenant", WHOLE_WINDOW))


def test_readers_see_the_data_before_or_after_a_replace_or_delete_never_between(server):
    """Each replace and delete swaps the raw slice and its roll-ups in at once, while readers read in a loop."""
    slice_ = "tenant_id = 'tenant_umbrella' AND toDate(timestamp) = '2025-05-14'"
    base = total_requests(server) - count(server, "api_logs", slice_)
    sizes = [7, 19, 3, 11]  # rows of the slice after each replace; a delete ends it at 0
    allowed = {base + count(server, "api_logs", slice_), base} | {base + n for n in sizes}
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        session = requests.Session()
        while not stop.is_set():
            answer = session.get(
                server.url("/v0/pipes/api_usage_by_tenant.json"), params=WHOLE_WINDOW, headers=server.auth()
            )
            seen.append(sum(r["request_count"] for r in answer.json()["data"]))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for n in sizes:
            rows = [api_row(i, tenant="tenant_umbrella", day="2025-05-14") for i in range(n)]
            params = {"name": "api_logs", "mode": "replace", "replace_condition": slice_}
            answer = post_file(server, params, "ndjson", "s.ndjson", ndjson(rows))
            assert answer.status_code == 200, answer.text
            assert total_requests(server) == base + n
        deleted = server.http.post(
            server.url("/v0/datasources/api_logs/delete"), data={"delete_condition": slice_}, headers=server.auth()
        )
        assert deleted.status_code == 200, deleted.text
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert total_requests(server) == base
    assert len(seen) > 10 and set(seen) <= allowed, sorted(set(seen) - allowed)
    assert_rollups_agree(server)


def test_sql_cannot_write_or_read_server_files(server, tmp_path):
    out = tmp_path / "stolen.tsv"
    for q in [
        f"SELECT 1 INTO OUTFILE '{out}'",
        f"SELECT * FROM events INTO OUTFILE '{out}' FORMAT CSV",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT file('/etc/passwd')",
        "SELECT * FROM events SETTINGS max_execution_time = 0",
        "SELECT * FROM tb._tb_staging_events_x",
    ]:
        answer = server.http.get(server.url("/v0/sql"), params={"q": q}, headers=server.auth())
        assert answer.status_code == 400, (q, answer.text)
        assert "root:" not in answer.text
    assert not out.exists()
    assert server.sql("SELECT count() AS n FROM numbers(10)") == [{"n": 10}]  # Tinybird's table functions stay


def test_pipe_sql_cannot_write_files():
    pipe = Pipe(name="p", nodes=(Node(name="endpoint", sql="SELECT 1 INTO OUTFILE '/tmp/pwned'"),))
    with pytest.raises(Exception, match="OUTFILE"):
        PipeRenderer(pipe, lambda name, values: None).render({})


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A server bound beyond loopback, with small query limits (on the `events` slice: its queries read numbers())."""
    root = tmp_path_factory.mktemp("limited")
    process = ServerProcess(slice_project(root / "project"), root / "data")
    process.extra_args = ["--host", "0.0.0.0", "--query-timeout", "1", "--query-memory", "200000000"]
    process.extra_args += ["--max-result-bytes", "1000000"]
    yield process.start()
    process.stop()


def test_tokens_are_not_handed_out_beyond_loopback(limited):
    answer = requests.get(limited.url("/tokens"), timeout=5)
    assert answer.status_code == 403 and "--expose-tokens" in answer.json()["error"]
    assert limited.token not in answer.text


@pytest.mark.parametrize(
    ("q", "status", "code"),
    [
        ("SELECT count() FROM numbers(30000000000)", 408, "TIMEOUT_EXCEEDED"),
        ("SELECT length(groupArray(number)) FROM numbers(100000000)", 400, "memory limit"),
        ("SELECT number FROM numbers(10000000)", 400, "1000000 bytes"),
    ],
)
def test_every_query_is_bounded_in_time_memory_and_result(limited, q, status, code):
    answer = limited.http.get(limited.url("/v0/sql"), params={"q": q}, headers=limited.auth(), timeout=60)
    assert answer.status_code == status and code in answer.json()["error"], answer.text


def test_a_failed_query_does_not_spill_into_the_next_answer(server):
    """chDB keeps the output a failing query had begun and prepends it to the session's next answer."""
    for _ in range(12):
        bad = server.http.get(
            server.url("/v0/sql"),
            params={"q": "SELECT toUInt32(event_id) FROM events FORMAT JSON"},
            headers=server.auth(),
        )
        assert bad.status_code == 400
        assert server.sql("SELECT 1 AS x") == [{"x": 1}]


@pytest.mark.parametrize(
    ("pair", "message"),
    [("nope=1", "unknown limit 'nope'"), ("max_line_bytes=x", "not an integer"), ("fetch_timeout=0", "positive")],
)
def test_a_bad_limit_flag_is_named(tmp_path, pair, message):
    done = run_cli(None, "local", "--data-dir", str(tmp_path / "d"), "--limit", pair)
    assert done.returncode != 0 and message in done.stderr


def test_a_workspace_cannot_read_another_workspaces_tables(server):
    """A second workspace's pipe naming the first one's database (`tb.events`) is refused, not answered."""
    tokens = requests.get(server.url("/tokens"), timeout=5).json()
    created = server.http.post(
        server.url("/v1/workspaces"), params={"name": "nosy_neighbour", "token": tokens["user_token"]}
    )
    assert created.status_code == 200, created.text
    neighbour = created.json()["token"]
    pipe = "NODE endpoint\nSQL >\n    SELECT count() AS n FROM tb.events\n\nTYPE ENDPOINT\n"
    files = [("context://", ("cli-version", "1.0.0")), ("data_project://", ("endpoints/leak.pipe", pipe))]
    built = server.http.post(server.url("/v1/build"), files=files, headers=server.auth(neighbour))
    assert built.status_code == 200, built.text
    answer = server.http.get(server.url("/v0/pipes/leak.json"), headers=server.auth(neighbour))
    assert answer.status_code == 400 and "not a datasource of this workspace" in answer.json()["error"]
    # ClickHouse's system tables name every workspace's tables and keep their queries: only the server's own
    # workspace (whose admin runs the server) reads them; the generators stay readable
    spying = ("SELECT name FROM system.tables", "SELECT query FROM system.query_log", "SELECT * FROM system.parts")
    for q in ("SELECT count() FROM tb.events", "SELECT count() FROM events", *spying):
        refused = server.http.get(server.url("/v0/sql"), params={"q": q}, headers=server.auth(neighbour))
        assert refused.status_code == 400 and "not found" in refused.json()["error"], (q, refused.text)
    series = server.http.get(
        server.url("/v0/sql"),
        params={"q": "SELECT sum(number) AS s FROM (SELECT number FROM system.numbers LIMIT 4) FORMAT JSON"},
        headers=server.auth(neighbour),
    )
    assert series.status_code == 200 and series.json()["data"] == [{"s": 6}], series.text
    assert server.sql("SELECT count() AS n FROM system.tables WHERE database = 'tb' AND name = 'events'") == [{"n": 1}]


def test_a_condition_on_a_column_named_like_the_servers_own_aliases(start_server, tmp_path):
    """The server counts the matching rows before a delete or a conditional replace; its query must not shadow a
    column the condition names (`n` was the count's alias: `n > 1` became an aggregate in WHERE)."""
    (tmp_path / "datasources").mkdir()
    schema = 'SCHEMA >\n    `n` UInt32 `json:$.n`\n\nENGINE "MergeTree"\nENGINE_SORTING_KEY "n"\n'
    (tmp_path / "datasources" / "numbers.datasource").write_text(schema)
    _, target = start_server(tmp_path)
    assert target.send("numbers", [{"n": i} for i in range(5)]).json()["successful_rows"] == 5
    url = target.url("/v0/datasources/numbers/delete")
    dry = target.http.post(url, data={"delete_condition": "n > 1", "dry_run": "true"}, headers=target.auth())
    assert dry.status_code == 200 and dry.json() == {"rows_to_be_deleted": 3}, dry.text
    deleted = target.http.post(url, data={"delete_condition": "n > 1"}, headers=target.auth())
    assert deleted.status_code == 200 and deleted.json()["rows_affected"] == 3, deleted.text
    assert count(target, "numbers") == 2

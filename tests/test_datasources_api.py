"""The Data Sources API (append and replace files, delete rows), JSON bodies on the Events API, and backpressure.

Each test runs its own server on the repository's project and fixtures, because these calls change data
that the endpoint tests rely on. After every replace or delete, the roll-ups must agree with the raw table.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from conftest import ROOT, ServerProcess, count, post_file, run_cli, token_values

from usage_analytics.ingest import EventsClient

pytestmark = pytest.mark.embedded

API_COLUMNS = [
    "timestamp",
    "request_id",
    "tenant_id",
    "user_id",
    "endpoint",
    "method",
    "status_code",
    "response_time_ms",
    "request_size_bytes",
    "response_size_bytes",
    "ip_address",
    "user_agent",
    "error_type",
    "error_message",
    "region",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("dsapi") / "data"


@pytest.fixture(scope="module")
def server(data_dir):
    process = ServerProcess(ROOT, data_dir)
    target = process.start()
    yield target
    process.stop()


def api_row(i: int, tenant: str = "tenant_files", day: str = "2025-05-13", status: int = 200) -> dict:
    return {
        "timestamp": f"{day} {i % 24:02d}:{i % 60:02d}:00",
        "request_id": f"req-file-{tenant}-{day}-{i}",
        "tenant_id": tenant,
        "user_id": f"user_f{i % 7}",
        "endpoint": "/api/v1/files",
        "method": "GET",
        "status_code": status,
        "response_time_ms": 10 + i,
        "request_size_bytes": 100,
        "response_size_bytes": 2000 + i,
        "ip_address": "10.0.0.1",
        "user_agent": "test",
        "error_type": "",
        "error_message": "",
        "region": "eu-west-1",
    }


def ndjson(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def as_csv(rows: list[dict], header: bool = True, delimiter: str = ",") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    if header:
        writer.writerow(API_COLUMNS)
    writer.writerows([[r[c] for c in API_COLUMNS] for r in rows])
    return out.getvalue().encode()


API_ROLLUPS = [  # roll-up, its request count, its latency sum (None: it keeps none), the raw rows it counts
    ("api_logs_daily_tenants_mv", "requests", "response_time_sum", "1"),
    ("api_logs_daily_endpoints_mv", "requests", "response_time_sum", "1"),
    ("api_logs_daily_errors_mv", "errors", None, "status_code >= 400"),
    ("api_logs_user_days_mv", "requests", None, "1"),
    ("api_logs_user_endpoint_days_mv", "requests", "response_time_sum", "1"),
]


def assert_rollups_agree(target) -> None:
    """Every roll-up holds exactly what its raw table holds, per day."""
    for rollup, requests_column, time_sum, rows in API_ROLLUPS:
        raw_time, rollup_time = ("sum(response_time_ms)", f"sum({time_sum})") if time_sum else ("0", "0")
        api = target.sql(
            "SELECT day, tenant_id, sum(n) AS n, sum(t) AS t FROM (SELECT toDate(timestamp) AS day, tenant_id, "
            f"toInt64(count()) AS n, toInt64({raw_time}) AS t FROM api_logs WHERE {rows} GROUP BY day, tenant_id "
            f"UNION ALL SELECT day, tenant_id, -toInt64(sum({requests_column})), -toInt64({rollup_time}) "
            f"FROM {rollup} GROUP BY day, tenant_id) GROUP BY day, tenant_id HAVING n != 0 OR t != 0"
        )
        assert api == [], f"{rollup} disagrees with api_logs: {api[:5]}"
    users = target.sql(
        "SELECT r.day, r.u, m.u FROM (SELECT toDate(timestamp) AS day, uniqExact(user_id) AS u FROM events "
        "GROUP BY day) AS r FULL OUTER JOIN (SELECT day, uniqExactMerge(users) AS u FROM events_daily_users_mv "
        "GROUP BY day) AS m ON r.day = m.day WHERE r.u != m.u"
    )
    assert users == [], f"events_daily_users_mv disagrees with events: {users[:5]}"
    weeks = target.sql(
        "SELECT week, user_id, sum(n) AS n FROM (SELECT toMonday(timestamp) AS week, user_id, toInt64(count()) AS n "
        "FROM events GROUP BY week, user_id UNION ALL SELECT week, user_id, -toInt64(sum(events)) "
        "FROM events_weekly_users_mv GROUP BY week, user_id) GROUP BY week, user_id HAVING n != 0"
    )
    assert weeks == [], f"events_weekly_users_mv disagrees with events: {weeks[:5]}"
    days = target.sql(  # each (tenant, user, region)'s days, against the raw days (a day listed in two rows is one)
        "SELECT tenant_id, user_id, region, day, sum(n) AS n FROM (SELECT DISTINCT tenant_id, user_id, region, "
        "toDate(timestamp) AS day, toInt64(1) AS n FROM api_logs UNION ALL SELECT tenant_id, user_id, region, day, "
        "toInt64(-1) FROM (SELECT DISTINCT tenant_id, user_id, region, arrayJoin(days) AS day "
        "FROM api_logs_tenant_users_mv)) GROUP BY tenant_id, user_id, region, day HAVING n != 0"
    )
    assert days == [], f"api_logs_tenant_users_mv disagrees with api_logs: {days[:5]}"


def test_append_ndjson_csv_and_parquet_files(server):
    before = count(server, "api_logs")
    rows = [api_row(i) for i in range(30)]
    answer = post_file(server, {"name": "api_logs", "mode": "append"}, "ndjson", "a.ndjson", ndjson(rows[:10]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["statistics"]["row_count"] == 10 and body["quarantine_rows"] == 0 and body["status"] == "done"
    assert server.http.get(server.url(f"/v0/jobs/{body['job_id']}"), headers=server.auth()).json() == body

    # CSV with a header, semicolons, gzip; the SDK-style field name `csv` and `format=` both work
    content = gzip.compress(as_csv(rows[10:20], delimiter=";"))
    params = {"name": "api_logs", "mode": "append", "format": "csv", "dialect_delimiter": ";"}
    answer = post_file(server, params, "csv", "b.csv.gz", content)
    assert answer.status_code == 200 and answer.json()["statistics"]["row_count"] == 10, answer.text

    table = pa.Table.from_pylist(rows[20:30])
    sink = io.BytesIO()
    pq.write_table(table, sink)
    answer = post_file(server, {"name": "api_logs"}, "file", "c.parquet", sink.getvalue())
    assert answer.status_code == 200 and answer.json()["statistics"]["row_count"] == 10, answer.text

    assert count(server, "api_logs") == before + 30
    landed = server.sql("SELECT request_id, response_time_ms, timestamp FROM api_logs WHERE tenant_id = 'tenant_files'")
    assert sorted((r["request_id"], r["response_time_ms"], r["timestamp"]) for r in landed) == sorted(
        (r["request_id"], r["response_time_ms"], r["timestamp"]) for r in rows
    )
    assert_rollups_agree(server)


def test_csv_without_header_quarantines_bad_rows_and_lands_the_good_ones(server):
    good = [api_row(i, tenant="tenant_csv") for i in range(5)]
    lines = as_csv(good, header=False).decode().splitlines()
    lines.insert(2, lines[2].replace(",200,", ",two hundred,", 1))  # a value that is not a UInt16
    lines.append("2025-05-13 00:00:00,only,three")  # a row with too few fields
    answer = server.http.post(
        server.url("/v0/datasources"),
        params={"name": "api_logs", "mode": "append", "format": "csv"},
        data="\n".join(lines).encode(),
        headers=server.auth(),
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["statistics"]["row_count"], answer.json()["quarantine_rows"]) == (5, 2)
    assert count(server, "api_logs", "tenant_id = 'tenant_csv'") == 5
    reasons = server.sql(
        "SELECT c__error FROM api_logs_quarantine "
        f"WHERE c__import_id = '{answer.json()['import_id']}' ORDER BY c__error"
    )
    assert [r["c__error"] for r in reasons] == [
        ["CSV row 7 has 3 fields, expected 15"],
        ["column status_code: value two hundred is not a valid UInt16"],
    ]


@pytest.mark.deviation(
    "looser",
    "url= also takes a file:// path in the project folder or the data dir (admin tokens only); Tinybird fetches "
    "remote URLs only",
)
def test_append_from_a_file_url_needs_an_admin_token(server, data_dir):
    path = data_dir / "from_url.ndjson"  # file:// reaches only the project folder and the data dir
    path.write_bytes(ndjson([api_row(i, tenant="tenant_url") for i in range(4)]))
    answer = server.http.post(
        server.url("/v0/datasources"),
        params={"name": "api_logs", "mode": "append"},
        data={"url": path.as_uri()},
        headers=server.auth(),
    )
    assert answer.status_code == 200 and answer.json()["statistics"]["row_count"] == 4, answer.text
    tokens = server.http.get(server.url("/v0/tokens"), headers=server.auth()).json()["tokens"]
    appender = next(t for t in tokens if t["name"] == "ingest")
    assert {"type": "DATASOURCES:APPEND", "resource": "api_logs"} in appender["scopes"]
    appender = appender["token"]
    refused = server.http.post(
        server.url("/v0/datasources"),
        params={"name": "api_logs", "url": path.as_uri()},
        headers=server.auth(appender),
    )
    assert refused.status_code == 403 and "file://" in refused.json()["error"]
    missing = server.http.post(
        server.url("/v0/datasources"),
        params={"name": "api_logs", "url": (data_dir / "nope.csv").as_uri()},
        headers=server.auth(),
    )
    assert missing.status_code == 400 and "no such file" in missing.json()["error"]
    assert count(server, "api_logs", "tenant_id = 'tenant_url'") == 4


def test_replace_with_a_condition_swaps_only_matching_rows_and_rebuilds_the_rollups(server):
    day_filter = "tenant_id = 'tenant_acme' AND toDate(timestamp) = '2025-05-13'"
    before_all, before_day = count(server, "api_logs"), count(server, "api_logs", day_filter)
    assert before_day > 0
    replacement = [api_row(i, tenant="tenant_acme") for i in range(3)] + [api_row(99, tenant="tenant_other")]
    answer = post_file(
        server,
        {"name": "api_logs", "mode": "replace", "replace_condition": day_filter},
        "ndjson",
        "r.ndjson",
        ndjson(replacement),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["statistics"]["row_count"] == 3  # the row outside the condition is left out
    assert count(server, "api_logs", day_filter) == 3
    assert count(server, "api_logs") == before_all - before_day + 3
    assert count(server, "api_logs", "tenant_id = 'tenant_other'") == 0
    assert_rollups_agree(server)
    usage = server.data(
        "api_usage_by_tenant",
        {"start_date": "2025-05-13 00:00:00", "end_date": "2025-05-13 23:59:59", "limit": "10000"},
    )
    assert next(r for r in usage if r["tenant_id"] == "tenant_acme")["request_count"] == 3


def test_full_replace_and_a_failed_replace(server):
    rows = [
        {
            "event_id": f"rep-{i}",
            "user_id": f"u{i // 3}",
            "session_id": "s",
            "event_type": "click",
            "event_name": "x",
            "page": "/",
            "feature": "search_bar",
            "properties": "{}",
            "timestamp": f"2025-05-0{1 + i % 3} 10:00:00",
        }
        for i in range(9)
    ]
    answer = post_file(server, {"name": "events", "mode": "replace"}, "ndjson", "e.ndjson", ndjson(rows))
    assert answer.status_code == 200, answer.text
    assert count(server, "events") == 9
    assert_rollups_agree(server)
    dau = server.data("daily_active_users", {"end_date": "2025-05-03 23:59:59", "days": "3"})
    assert [(r["date"], r["active_users"]) for r in dau] == [("2025-05-03", 3), ("2025-05-02", 3), ("2025-05-01", 3)]

    # a bad condition is refused after the file was read: nothing changes, its quarantined rows are gone
    quarantined = count(server, "events_quarantine")
    bad = ndjson(rows[:2]) + b"\n{not json}"
    refused = post_file(
        server,
        {"name": "events", "mode": "replace", "replace_condition": "no_such_column = 1"},
        "ndjson",
        "bad.ndjson",
        bad,
    )
    assert refused.status_code == 400 and "replace_condition" in refused.json()["error"]
    assert count(server, "events") == 9 and count(server, "events_quarantine") == quarantined
    corrupt = post_file(server, {"name": "events"}, "parquet", "x.parquet", b"PAR1 not really")
    assert corrupt.status_code == 400 and "Parquet" in corrupt.json()["error"]
    assert count(server, "events") == 9


@pytest.mark.deviation(
    "different", "a delete rebuilds the roll-ups fed by the datasource; Tinybird leaves materialized views as they are"
)
def test_delete_rows_with_a_condition(server):
    where = "tenant_id = 'tenant_initech' AND status_code >= 500"
    matching = count(server, "api_logs", where)
    assert matching > 0
    url = server.url("/v0/datasources/api_logs/delete")
    dry = server.http.post(url, data={"delete_condition": where, "dry_run": "true"}, headers=server.auth())
    assert dry.json() == {"rows_to_be_deleted": matching} and count(server, "api_logs", where) == matching
    done = server.http.post(url, data={"delete_condition": where}, headers=server.auth())
    assert done.status_code == 200 and done.json()["rows_affected"] == matching, done.text
    assert count(server, "api_logs", where) == 0
    assert_rollups_agree(server)
    for condition, message in [("", "required"), ("1; DROP TABLE api_logs", "';'"), ("nope > 1", "Invalid")]:
        refused = server.http.post(url, data={"delete_condition": condition}, headers=server.auth())
        assert refused.status_code == 400 and message in refused.json()["error"], refused.text
    analyst = token_values(server)["analyst"]
    assert server.http.post(url, data={"delete_condition": "1"}, headers=server.auth(analyst)).status_code == 403


@pytest.mark.deviation(
    "stricter", "mode=create is refused (datasources come from datafiles); Tinybird creates a datasource from the file"
)
def test_data_sources_api_refuses_what_it_cannot_do(server):
    cases = [
        ({"name": "api_logs", "mode": "create"}, b"a,b", 400, "mode"),
        ({"name": "nope", "mode": "append"}, b"a,b", 404, "nope"),
        ({"name": "api_logs", "format": "xml"}, b"a,b", 400, "format"),
        ({"name": "api_logs", "mode": "append"}, b"", 400, "Send the data"),
        ({"name": "api_logs", "url": "ftp://example.com/x.csv"}, b"", 400, "file://"),
    ]
    for params, body, status, words in cases:
        answer = server.http.post(server.url("/v0/datasources"), params=params, data=body, headers=server.auth())
        assert answer.status_code == status and words in answer.json()["error"], (params, answer.text)


def test_events_api_takes_a_json_array_and_a_pretty_printed_object(server):
    rows = [api_row(i, tenant="tenant_json") for i in range(3)]
    url = server.url("/v0/events")
    answer = server.http.post(
        url, params={"name": "api_logs", "wait": "true"}, data=json.dumps(rows), headers=server.auth()
    )
    assert answer.json() == {"successful_rows": 3, "quarantined_rows": 0}
    answer = server.http.post(
        url,
        params={"name": "api_logs", "wait": "true"},
        data=json.dumps(api_row(7, tenant="tenant_json"), indent=2),
        headers=server.auth(),
    )
    assert answer.json() == {"successful_rows": 1, "quarantined_rows": 0}
    assert answer.headers["X-RateLimit-Limit"] == "16"
    mixed = server.http.post(
        url,
        params={"name": "api_logs", "wait": "true"},
        data=json.dumps([api_row(8, tenant="tenant_json"), "not an object"]),
        headers=server.auth(),
    )
    assert mixed.json() == {"successful_rows": 1, "quarantined_rows": 1}
    assert count(server, "api_logs", "tenant_id = 'tenant_json'") == 5


@pytest.mark.deviation(
    "different", "backpressure counts requests in progress per datasource; Tinybird limits requests and MB per second"
)
def test_backpressure_answers_429_and_a_retrying_client_still_lands_every_row_once(tmp_path):
    # api_logs alone, with no fixtures to load (the module's server shares no state with this one's flag)
    (tmp_path / "project/datasources").mkdir(parents=True)
    shutil.copy(ROOT / "datasources/api_logs.datasource", tmp_path / "project/datasources")
    process = ServerProcess(tmp_path / "project", tmp_path / "data")
    process.extra_args = ["--max-pending-ingests", "1"]
    target = process.start()
    try:
        bodies = [ndjson([api_row(i, tenant=f"tenant_bp{k}") for i in range(4_000)]) for k in range(8)]
        barrier, answers = threading.Barrier(len(bodies)), []

        def post(body: bytes) -> None:
            barrier.wait()
            answers.append(
                requests.post(
                    target.url("/v0/events"),
                    params={"name": "api_logs", "wait": "true"},
                    data=body,
                    headers=target.auth(),
                    timeout=120,
                )
            )

        threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        refused = [a for a in answers if a.status_code == 429]
        accepted = [a for a in answers if a.status_code == 200]
        assert refused and accepted and len(refused) + len(accepted) == len(bodies)
        assert {a.headers["Retry-After"] for a in refused} == {"1"}
        assert {(a.headers["X-RateLimit-Limit"], a.headers["X-RateLimit-Remaining"]) for a in refused} == {("1", "0")}
        assert "behind" in refused[0].json()["error"]
        landed = count(target, "api_logs", "startsWith(tenant_id, 'tenant_bp')")
        assert landed == 4_000 * len(accepted)  # what was acknowledged landed; what was refused did not

        # the project's own client retries the 429s and ends with every row exactly once
        lines = [json.dumps(api_row(i, tenant="tenant_client")).encode() for i in range(6_000)]
        # three senders share one slot, so two of them wait out a Retry-After (1 s) each round; on a busy machine a
        # batch can lose the race many times in a row, so this client may retry far more than the default 5 (the
        # property is that retries land once)
        client = EventsClient(target.base_url, target.token, max_rows=2_000, concurrency=3, retries=30)
        totals = client.send("api_logs", lines)
        assert (totals.acknowledged, totals.failed) == (6_000, 0), totals.summary()
        assert count(target, "api_logs", "tenant_id = 'tenant_client'") == 6_000
        assert count(target, "api_logs", "tenant_id = 'tenant_client'") == len(
            target.sql("SELECT DISTINCT request_id FROM api_logs WHERE tenant_id = 'tenant_client'")
        )
    finally:
        process.stop()


def test_cli_starts_with_a_backpressure_option():
    result = run_cli(None, "local", "--max-pending-ingests", "0")
    assert result.returncode != 0 and "max-pending-ingests" in result.stderr


def test_a_file_line_that_is_not_utf8_goes_to_quarantine_and_the_rest_lands(server):
    rows = [api_row(i, tenant="tenant_utf8") for i in range(3)]
    content = ndjson(rows[:2]) + b'\n{"request_id": "bad-\xff"}\n' + ndjson(rows[2:])
    answer = post_file(server, {"name": "api_logs", "mode": "append"}, "ndjson", "u.ndjson", content)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["statistics"]["row_count"], answer.json()["quarantine_rows"]) == (3, 1)
    assert count(server, "api_logs", "tenant_id = 'tenant_utf8'") == 3
    bad = 'arrayExists(e -> startsWith(e, \'invalid JSON object: {"request_id": "bad-\'), c__error)'
    assert count(server, "api_logs_quarantine", bad) == 1

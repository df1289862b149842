"""Tinybird semantics that real projects rely on, each on a small project of ours served by the embedded server."""

from __future__ import annotations

import json
import os

import pytest
from conftest import write_files

pytestmark = pytest.mark.embedded

REQUESTS = """\
SCHEMA >
    `ts` DateTime `json:$.ts`,
    `domain` String `json:$.domain`,
    `status_code` UInt16 `json:$.status`,
    `region` LowCardinality(Nullable(String)) `json:$.region`

ENGINE "MergeTree"
ENGINE_SORTING_KEY "domain, ts"
"""

# the target lists status_code before the aggregate; the materialization below selects them the other way round
BY_STATUS = """\
SCHEMA >
    `domain` String,
    `status_code` UInt16,
    `total_requests` AggregateFunction(count)

ENGINE "AggregatingMergeTree"
ENGINE_SORTING_KEY "domain, status_code"
"""

# with a query hint, which a materialized view leaves out (its SELECT is read for the tables that feed it)
MATERIALIZATION = """\
NODE by_status
SQL >
    %
    {{ max_threads(1) }}
    SELECT domain, countState() AS total_requests, status_code
    FROM requests
    GROUP BY domain, status_code

TYPE MATERIALIZED
DATASOURCE requests_by_status
"""

ENDPOINT = """\
NODE endpoint
SQL >
    SELECT domain, status_code, countMerge(total_requests) AS total
    FROM requests_by_status
    GROUP BY domain, status_code
    ORDER BY domain, status_code

TYPE ENDPOINT
"""


# a WITH alias named like the column it is computed from
SHADOWING_ALIAS = """\
NODE endpoint
SQL >
    WITH upper(domain) AS domain
    SELECT domain, count() AS hits FROM requests GROUP BY domain ORDER BY domain

TYPE ENDPOINT
"""


# Tinybird's query hints, from any node of the pipe, for the whole query
HINTED = """\
NODE rows
SQL >
    %
    {{ max_threads(10000) }}
    SELECT domain, ts FROM requests

NODE endpoint
SQL >
    %
    {{ activate('optimize_aggregation_in_order') }}
    SELECT domain, count() AS hits FROM rows GROUP BY domain ORDER BY domain -- in the sorting key's order

TYPE ENDPOINT
"""

# keys that need quoting in SQL: a backslash (which ClickHouse reads as an escape inside backticks too) and a quote.
# The plain paths are read from one parse of the row, the array path on its own: both must find the keys.
ODD_KEYS = r"""SCHEMA >
    `slash` Nullable(String) `json:$.a\\b`,
    `quote` Nullable(String) `json:$.it's`,
    `first` Nullable(String) `json:$.list[0]`

ENGINE "MergeTree"
ENGINE_SORTING_KEY "tuple()"
"""


def request(domain: str, status: int, **extra) -> str:
    return json.dumps({"ts": "2025-03-01 12:00:00", "domain": domain, "status": status, **extra})


@pytest.fixture
def requests(tmp_path, start_server):
    fixture = [request("a.com", 200, region="eu"), request("a.com", 200), request("a.com", 500, region=None)]
    project = write_files(
        tmp_path / "requests",
        {
            "datasources/requests.datasource": REQUESTS,
            "datasources/requests_by_status.datasource": BY_STATUS,
            "datasources/odd_keys.datasource": ODD_KEYS,
            "materializations/by_status.pipe": MATERIALIZATION,
            "endpoints/status_totals.pipe": ENDPOINT,
            "endpoints/upper_domains.pipe": SHADOWING_ALIAS,
            "endpoints/hinted.pipe": HINTED,
            "fixtures/requests.ndjson": "\n".join(fixture),
        },
    )
    return start_server(project)[1]


def test_low_cardinality_nullable_takes_missing_and_null_values(requests):
    # ClickHouse: LowCardinality(Nullable(String)) stores NULL (docs: sql-reference/data-types/lowcardinality);
    # Tinybird stores a missing or null value of a Nullable column as NULL instead of quarantining the row
    sent = [request("b.com", 200), request("b.com", 201, region=None), request("b.com", 202, region="us")]
    assert requests.send("requests", sent).json() == {"successful_rows": 3, "quarantined_rows": 0}
    stored = requests.sql("SELECT status_code, region FROM requests WHERE domain = 'b.com' ORDER BY status_code")
    assert stored == [
        {"status_code": 200, "region": None},
        {"status_code": 201, "region": None},
        {"status_code": 202, "region": "us"},
    ]


def test_json_keys_that_need_quoting_in_sql_are_read_as_written(requests):
    row = {"a\\\\b": "slash", "it's": "quote", "list": ["first"]}
    assert requests.send("odd_keys", [json.dumps(row)]).json() == {"successful_rows": 1, "quarantined_rows": 0}
    assert requests.sql("SELECT slash, quote, first FROM odd_keys") == [
        {"slash": "slash", "quote": "quote", "first": "first"}
    ]


def test_materialization_fills_its_target_by_column_name(requests):
    # ClickHouse matches a materialized view's output columns to its target's by name, not position
    # (docs: sql-reference/statements/create/view, "materialized view ... TO"): the backfill must too
    assert requests.data("status_totals") == [
        {"domain": "a.com", "status_code": 200, "total": 2},
        {"domain": "a.com", "status_code": 500, "total": 1},
    ]
    requests.send("requests", [request("a.com", 500), request("c.com", 404)])
    assert requests.data("status_totals") == [
        {"domain": "a.com", "status_code": 200, "total": 2},
        {"domain": "a.com", "status_code": 500, "total": 2},
        {"domain": "c.com", "status_code": 404, "total": 1},
    ]
    # a delete rebuilds the roll-up from the rows left, by the same rule
    url = requests.url("/v0/datasources/requests/delete")
    deleted = requests.http.post(url, data={"delete_condition": "status_code = 500"}, headers=requests.auth())
    assert deleted.status_code == 200, deleted.text
    assert requests.data("status_totals") == [
        {"domain": "a.com", "status_code": 200, "total": 2},
        {"domain": "c.com", "status_code": 404, "total": 1},
    ]


def test_tinybird_sql_semantics(requests):
    # Tinybird joins a subquery without an alias (ClickHouse: joined_subquery_requires_alias = 0, Code 206 otherwise);
    # not applied, see engine.py: prefer_column_name_to_alias, for a WITH alias named like a column
    joined = requests.sql(
        "SELECT domain, label FROM requests AS r "
        "JOIN (SELECT toUInt16(500) AS code, 'error' AS label) ON r.status_code = code"
    )
    assert joined == [{"domain": "a.com", "label": "error"}]
    # A WITH alias named like a column: Tinybird answers as ClickHouse did before 24.3 (the old analyzer), reading the
    # column (ClickHouse issue 61950; undocumented by Tinybird); chDB 26.9 cannot turn its analyzer off and reads the
    # alias, and prefer_column_name_to_alias would also change `f(ts) AS ts ... GROUP BY ts`. So the build says so.
    build = requests.http.post(requests.url("/v0/build"), headers=requests.auth()).json()
    expected = "pipe upper_domains, node endpoint: the WITH alias domain is named like a column"
    assert any(line.startswith(expected) for line in build["changes"]), build
    assert not any("status_totals" in line and "WITH alias" in line for line in build["changes"])
    assert requests.data("upper_domains") == [{"domain": "A.COM", "hits": 3}]  # the alias, as the warning says
    # `max_threads()` and `activate()` in a template are settings of the query the pipe runs (Tinybird's parser
    # refuses them in the SQL itself); max_threads is bounded by the machine's cores
    assert requests.data("hinted") == [{"domain": "a.com", "hits": 3}]
    again = requests.pipe("hinted")  # kept like any answer: the settings do not hide the tables it reads
    assert again.json()["data"] == [{"domain": "a.com", "hits": 3}]
    assert 'cache;desc="hit"' in again.headers["Server-Timing"], again.headers["Server-Timing"]
    explained = requests.http.get(requests.url("/v0/pipes/hinted/explain"), headers=requests.auth()).json()
    settings = f"SETTINGS max_threads = {os.cpu_count()}, optimize_aggregation_in_order = 1"
    assert explained["debug_query"].endswith(f"\n{settings}"), explained["debug_query"]
    assert "Read type: InOrder" in explained["query_explain"], explained["query_explain"]
    assert requests.data("upper_domains") == [{"domain": "A.COM", "hits": 3}]  # no hints, no settings
    plain = requests.http.get(requests.url("/v0/pipes/upper_domains/explain"), headers=requests.auth()).json()
    assert "SETTINGS" not in plain["debug_query"] and "InOrder" not in plain["query_explain"]
    # a templated /v0/sql query takes them too (its SQL is checked before they are added), and reading a hinted pipe
    # takes its rows, not its hints; an unknown feature is Tinybird's 400
    assert requests.sql("%\n{{ max_threads(1) }} SELECT count() AS n FROM requests") == [{"n": 3}]
    assert requests.sql("SELECT sum(hits) AS n FROM hinted") == [{"n": 3}]
    refused = requests.http.get(
        requests.url("/v0/sql"), params={"q": "%\n{{ activate('everything') }} SELECT 1"}, headers=requests.auth()
    )
    assert refused.status_code == 400 and "'everything' is not a valid 'activate' argument" in refused.json()["error"]


EVENTS = """\
SCHEMA >
    `id` UInt64 `json:$.id`,
    `kind` String `json:$.kind`,
    `ts` DateTime `json:$.ts`

ENGINE "MergeTree"
ENGINE_SORTING_KEY "kind, id"
"""

KIND_COUNTS = """\
NODE endpoint
SQL >
    SELECT kind, count() AS n FROM events GROUP BY kind ORDER BY kind

TYPE ENDPOINT
"""

# the mock rows `tb build` generates when there is no .ndjson: the result of this SELECT, run through /v0/sql
# and appended to the empty datasource (tinybird CLI, build_common.append_project_fixtures / rebuild_fixture_sql)
EVENTS_SQL = """\
SELECT number AS id, td.kinds[number % 3 + 1] AS kind, toDateTime('2025-01-01 00:00:00') + number AS ts
FROM numbers(1200), (SELECT ['click', 'view', 'buy'] AS kinds) AS td;
"""


def test_sql_fixture_fills_an_empty_datasource(tmp_path, start_server):
    project = write_files(
        tmp_path / "mock",
        {
            "datasources/events.datasource": EVENTS,
            "endpoints/kind_counts.pipe": KIND_COUNTS,
            "fixtures/events.sql": EVENTS_SQL,
        },
    )
    target = start_server(project)[1]
    assert target.sql("SELECT count() AS n, max(id) AS top FROM events") == [{"n": 1200, "top": 1199}]
    assert target.data("kind_counts") == [
        {"kind": "buy", "n": 400},
        {"kind": "click", "n": 400},
        {"kind": "view", "n": 400},
    ]

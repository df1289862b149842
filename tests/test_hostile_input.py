"""Hostile input: injection through every parameter of every endpoint, and malformed HTTP.

Every answer must be a 2xx or a 4xx with Tinybird's error body, never a 5xx, and the data must be
intact afterwards (a canary count taken before and after). Endpoint SQL also runs in a read-only
session, so even a template mistake could not write.
"""

from __future__ import annotations

import pytest
import requests
from conftest import ROOT

from usage_analytics.local import load_project
from usage_analytics.local.pipes import declared_parameters

PAYLOADS = [
    "'",
    "' OR '1'='1",
    "'; DROP TABLE events; --",
    "x' UNION ALL SELECT name, 1, 1 FROM system.tables --",
    "\\'",
    "\\",
    "1; SELECT 1",
    "/* comment */ 1",
    "-- 1",
    "{{ 1 + 1 }}",
    "{% import os %}",
    "{{ __import__('os').system('id') }}",
    "${jndi:ldap://x}",
    "%00",
    "\x00",
    "ünïcødé ✓ 😀",
    "\u202e reversed",
    "1e309",
    "-2147483649",
    "2147483648",
    "0x10",
    "NaN",
    "2025-01-01 00:00:00' OR '1'='1",
    "2025-01-01T00:00:00Z",
    "9999-12-31 23:59:59",
    "0000-00-00 00:00:00",
    " ",
    "",
    "a" * 5000,
    "1 week'); DROP TABLE events; --",
]
ENDPOINT_PARAMS = {
    name: sorted(declared_parameters(pipe)) for name, pipe in sorted(load_project(ROOT).endpoints.items())
}
CASES = [(name, param) for name, params in ENDPOINT_PARAMS.items() for param in params]
# The whole matrix is 2,010 requests, a tenth of make test's CPU: make test sends each parameter every third payload,
# the next parameter the next third, so that an endpoint of three parameters or more gets every payload, and every
# parameter one of each kind above (they are grouped by kind); `make test-slow` (CI's slow job) sends the rest.
SHARES = 3


def payloads(case: int, slow: bool) -> list[str]:
    return [p for i, p in enumerate(PAYLOADS) if ((i + case) % SHARES == 0) != slow]


def canary(target) -> list[dict]:
    return target.sql("SELECT count() AS n, sum(cityHash64(event_id)) AS h FROM events")


@pytest.fixture(scope="module")
def intact(target):
    before = canary(target)
    yield
    assert canary(target) == before, "the events table changed under hostile input"


def assert_no_payload_breaks(target, endpoint: str, param: str, sent: list[str]) -> None:
    for payload in sent:
        response = target.pipe(endpoint, {param: payload})
        assert response.status_code < 500, (payload, response.text[:300])
        if response.status_code >= 400:
            assert response.json()["error"], payload


NUMBERED_CASES = [(i, *case) for i, case in enumerate(CASES)]
CASE_IDS = [f"{e}-{p}" for e, p in CASES]


@pytest.mark.parametrize(("case", "endpoint", "param"), NUMBERED_CASES, ids=CASE_IDS)
def test_no_parameter_value_breaks_an_endpoint(target, intact, case, endpoint, param):
    assert_no_payload_breaks(target, endpoint, param, payloads(case, slow=False))


@pytest.mark.slow
@pytest.mark.parametrize(("case", "endpoint", "param"), NUMBERED_CASES, ids=CASE_IDS)
def test_no_parameter_value_breaks_an_endpoint_the_rest_of_the_matrix(target, intact, case, endpoint, param):
    assert_no_payload_breaks(target, endpoint, param, payloads(case, slow=True))


def test_the_two_shares_are_the_whole_matrix_and_each_endpoint_of_three_parameters_gets_every_payload():
    for case in range(len(CASES)):
        fast, slow = payloads(case, slow=False), payloads(case, slow=True)
        assert sorted(fast + slow) == sorted(PAYLOADS) and not set(fast) & set(slow) and len(fast) == 10
    for name, params in ENDPOINT_PARAMS.items():
        first = CASES.index((name, params[0]))
        sent = {p for case in range(first, first + len(params)) for p in payloads(case, slow=False)}
        assert len(params) < SHARES or sent == set(PAYLOADS), name


def test_injection_in_a_string_filter_only_filters(target, intact):
    assert target.data("user_activity", {"tenant_id": "x' OR '1'='1"}) == []
    assert target.data("user_feature_usage", {"user_id": "' OR 1=1 --"}) == []


@pytest.mark.parametrize(
    "path",
    [
        "/v0/pipes/..%2F..%2Fetc%2Fpasswd.json",
        "/v0/pipes/../datasources.json",
        "/v0/pipes/feature_usage%00.json",
        "/v0/pipes/.json",
        "/v0/datasources/..%2Fevents",
        "/v0/pipes/" + "x" * 5000 + ".json",
    ],
)
def test_path_tricks_are_4xx(target, path):
    response = requests.get(target.url(path), headers=target.auth(), timeout=10)
    assert 400 <= response.status_code < 500
    assert response.json()["error"]


def test_huge_query_string_is_4xx_or_answered(target):
    response = target.pipe("feature_usage", {"feature": "f" * 60_000})
    assert response.status_code < 500


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("{not json", "application/json"), ("[1, 2]", "application/json"), ("feature=x", "text/plain")],
)
def test_malformed_pipe_posts_are_4xx(target, body, content_type):
    response = requests.post(
        target.url("/v0/pipes/feature_usage.json"),
        data=body,
        headers={**target.auth(), "Content-Type": content_type},
        timeout=10,
    )
    assert response.status_code < 500
    if response.status_code >= 400:
        assert response.json()["error"]


def test_events_refuse_bad_encoding(target):
    response = requests.post(
        target.url("/v0/events"),
        params={"name": "events"},
        data=b"not gzip at all",
        headers={**target.auth(), "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert response.status_code == 400 and "gzip" in response.json()["error"]


def test_sql_injection_through_sql_is_refused_by_the_engine(target, intact):
    for query in [
        "SELECT 1; DROP TABLE events",
        "WITH x AS (SELECT 1) INSERT INTO events SELECT * FROM events",
        "SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')",
        "SELECT * FROM events SETTINGS readonly = 0",
    ]:
        response = requests.get(target.url("/v0/sql"), params={"q": query}, headers=target.auth(), timeout=10)
        assert response.status_code == 400, (query, response.text)


@pytest.mark.embedded
@pytest.mark.parametrize(
    ("query", "mentions", "name"),
    [
        ("SELECT nope FROM events", "`nope`", "UNKNOWN_IDENTIFIER"),
        # a pipe read through /v0/sql: its nodes are inlined, and none of their SQL comes back
        ("SELECT count() FROM feature_usage WHERE nope = 1", "`nope`", "UNKNOWN_IDENTIFIER"),
        ("SELECT toDate('x') FROM events", "Cannot parse date", "CANNOT_PARSE_DATE"),
        ("SELECT count() FROM user_activity WHERE request_count = 'x'", "Cannot convert string 'x'", "TYPE_MISMATCH"),
    ],
)
def test_a_failed_query_says_what_failed_without_the_engines_internals(target, query, mentions, name):
    """Tinybird's wording: `[Error] <what>. (<ClickHouse's name>)`, without ClickHouse's code prefix, the echo of the
    query it failed on (the SQL of the pipe's nodes and its roll-ups) or the database the tables are kept in."""
    response = requests.get(target.url("/v0/sql"), params={"q": query}, headers=target.auth(), timeout=10)
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert message.startswith("[Error] ") and mentions in message and message.endswith(f". ({name})"), message
    for internal in ("DB::Exception", "Code: ", "In scope", "While processing", "tb.", "_mv", "SELECT", "endpoint"):
        assert internal not in message, message

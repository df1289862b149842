"""The server's pure parts, in process and without a server: routing, error mapping, the SQL checker, request
bounds, token scopes and upload paths. A failure here names a function, not an endpoint."""

from __future__ import annotations

import asyncio
import inspect
import json
import os

import jwt
import pytest
from starlette.responses import PlainTextResponse

from usage_analytics.local import http, sqlcheck, upload
from usage_analytics.local.auth import TokenStore
from usage_analytics.local.engine import EngineError
from usage_analytics.local.errors import RequestError, engine_failure
from usage_analytics.local.http.limits import RequestLimits
from usage_analytics.local.pipes import with_hints, without_hints
from usage_analytics.local.settings import ServerSettings
from usage_analytics.local.workspace import query_error


def test_every_route_is_a_module_level_handler_of_its_api_module():
    seen = set()
    for route in http.ROUTES:
        handler = route.endpoint
        assert inspect.iscoroutinefunction(handler), route.path
        assert handler.__module__.startswith("usage_analytics.local.http."), (route.path, handler.__module__)
        assert "<locals>" not in handler.__qualname__, route.path
        for method in route.methods or ():
            assert (route.path, method) not in seen, f"{method} {route.path} is routed twice"
            seen.add((route.path, method))


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ("Code: 159. DB::Exception: Timeout exceeded: elapsed 1.0 s. (TIMEOUT_EXCEEDED)", 408),
        ("Code: 241. DB::Exception: Query memory limit exceeded: would use 1 GiB. (MEMORY_LIMIT_EXCEEDED)", 400),
        ("Code: 241. DB::Exception: Memory limit (total) exceeded: would use 20 GiB. (MEMORY_LIMIT_EXCEEDED)", 503),
        ("Code: 396. DB::Exception: Limit for result exceeded, max bytes: 1 MiB. (TOO_MANY_ROWS_OR_BYTES)", 400),
        ("Code: 47. DB::Exception: Unknown identifier: nope. (UNKNOWN_IDENTIFIER)", 400),
    ],
)
def test_a_failed_read_maps_to_tinybirds_status(message, status):
    assert query_error(EngineError(message), ServerSettings()).status == status


@pytest.mark.parametrize(
    ("message", "code", "status"),
    [
        ("Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)", "NOT_ENOUGH_SPACE", 507),
        ("Cannot write to file: No space left on device", "", 507),
        ("Too many parts (300). (TOO_MANY_PARTS)", "TOO_MANY_PARTS", 500),
    ],
)
def test_a_failed_write_is_a_5xx_and_a_full_disk_is_507(message, code, status):
    assert EngineError(message).code == code
    assert engine_failure(message, code).status == status


@pytest.mark.parametrize(
    "condition",
    [
        "toUInt8((SELECT groupArray(line) FROM url('http://x/tokens', 'LineAsString'))[1])",
        "file('/etc/passwd') != ''",
        "user_id IN (SELECT user_id FROM tb.events_quarantine)",
        "1) OR (1",
        "1 INTO OUTFILE '/tmp/x'",
        "1; SELECT 1",
        "",
    ],
)
def test_the_checker_refuses_conditions_that_reach_beyond_their_datasource(condition):
    with pytest.raises(RequestError) as refused:
        sqlcheck.check_condition(condition, "events", "delete_condition")
    assert refused.value.status == 400


def test_the_checker_takes_conditions_over_the_datasources_own_columns():
    for condition in ["toDate(timestamp) = '2025-05-13'", "user_id = ')' AND page != ';'", "event_id IN ('a', 'b')"]:
        sqlcheck.check_condition(condition, "events", "delete_condition")


def call(app, path: str, query: bytes = b"", headers: list | None = None) -> tuple[int, bytes]:
    """One HTTP request through an ASGI app, in process: (status, body)."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query}
    scope |= {"headers": headers or [], "scheme": "http", "server": ("x", 80), "root_path": "", "http_version": "1.1"}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_request_limits_answer_414_and_431_with_json():
    async def ok(scope, receive, send):
        await PlainTextResponse("ok")(scope, receive, send)

    app = RequestLimits(ok, ServerSettings(max_url_bytes=100, max_header_bytes=1000))
    assert call(app, "/x", b"a=" + b"b" * 50) == (200, b"ok")
    status, body = call(app, "/x", b"a=" + b"b" * 200)
    assert status == 414 and "POST body" in json.loads(body)["error"]
    status, body = call(app, "/x", headers=[(b"authorization", b"Bearer " + b"j" * 2000)])
    assert status == 431 and json.loads(body)["error"]


def test_token_scopes_and_workspace_ownership(tmp_path):
    store = TokenStore(tmp_path)
    admin = store.authenticate(store.admin_token)
    assert admin.admin and store.owns(store.admin_token) and not store.owns("p.unknown")
    claims = {"workspace_id": store.workspace_id, "name": "t", "exp": 4102444800}
    claims["scopes"] = [{"type": "PIPES:READ", "resource": "usage_metering", "fixed_params": {"tenant_id": "a"}}]
    value = jwt.encode(claims, store.admin_token, algorithm="HS256")
    reader = store.authenticate(value)
    assert reader.allows("PIPES:READ", "usage_metering") and not reader.allows("PIPES:READ", "user_activity")
    assert not reader.allows("DATASOURCES:APPEND", "events") and reader.fixed_params == {
        "usage_metering": {"tenant_id": "a"}
    }
    assert store.owns(value)
    other = jwt.encode({**claims, "workspace_id": "another"}, store.admin_token, algorithm="HS256")
    assert not store.owns(other)
    with pytest.raises(RequestError):
        store.authenticate(other)


@pytest.mark.parametrize("name", ["/etc/passwd.pipe", "../x.pipe", "a/../../x.datasource", "x.py", "", None])
def test_an_uploaded_datafile_stays_inside_its_project(name):
    with pytest.raises(RequestError):
        upload._safe_path(name)
    assert str(upload._safe_path("endpoints/web/x.pipe")) == "endpoints/web/x.pipe"


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("WITH upper(domain) AS domain SELECT domain FROM t GROUP BY domain", ["domain"]),
        ("WITH upper(domain) AS d, 3 AS status_code SELECT d FROM t", ["status_code"]),
        ("SELECT * FROM (WITH f(a, b) AS ts SELECT ts FROM t)", ["ts"]),
        ("WITH x AS (SELECT 1) SELECT * FROM x", []),  # a subquery named x, not an expression's alias
        ("WITH domain AS (SELECT 1) SELECT 1", []),
        ("SELECT toStartOfHour(ts) AS ts FROM t GROUP BY ts", []),  # a SELECT alias: both analyzers read it
        ("WITH 'a, b AS domain' AS label SELECT 1", []),  # inside a literal
        ("WITH upper(domain) AS `other` SELECT 1", []),
    ],
)
def test_with_aliases_named_like_a_column_are_found(sql, found):
    assert sqlcheck.with_aliases_named_like(sql, {"domain", "ts", "status_code"}) == found


@pytest.mark.parametrize(
    ("sql", "hints", "expected"),
    [
        ("SELECT 1", {}, "SELECT 1"),
        ("SELECT 1", {"activate": set()}, "SELECT 1"),
        ("SELECT 1 -- note", {"max_threads": 1}, "SELECT 1 -- note\nSETTINGS max_threads = 1"),
        ("SELECT 1", {"max_threads": 0}, "SELECT 1\nSETTINGS max_threads = 1"),
        ("SELECT 1", {"max_threads": 10**6}, f"SELECT 1\nSETTINGS max_threads = {os.cpu_count()}"),
        (
            "SELECT 1",
            {"activate": {"parallel_replicas", "analyzer", "optimize_aggregation_in_order"}},
            "SELECT 1\nSETTINGS optimize_aggregation_in_order = 1",
        ),
        ("SELECT 1", {"activate": {"analyzer"}}, "SELECT 1"),
        (
            "SELECT 1 SETTINGS join_use_nulls = 1",
            {"max_threads": 1},
            "SELECT 1 SETTINGS join_use_nulls = 1\n, max_threads = 1",
        ),
        (
            "SELECT * FROM (SELECT 1 SETTINGS join_use_nulls = 1) WHERE 'SETTINGS' != ''",
            {"max_threads": 1},
            "SELECT * FROM (SELECT 1 SETTINGS join_use_nulls = 1) WHERE 'SETTINGS' != ''\nSETTINGS max_threads = 1",
        ),
    ],
)
def test_query_hints_become_the_querys_settings(sql, hints, expected):
    assert with_hints(sql, hints) == expected
    assert without_hints(expected) == sql  # what the result cache's parser reads


@pytest.mark.parametrize(
    ("engine_says", "caller_reads"),
    [
        (
            "Code: 60. DB::Exception: Unknown table expression identifier 'tb.nothere' in scope SELECT 1. (X)",
            "[Error] Unknown table expression identifier 'nothere'. (X)",
        ),
        (
            "Code: 47. DB::Exception: Unknown expression identifier `x`. In scope SELECT x FROM tb.`events`. "
            "(UNKNOWN_IDENTIFIER)",
            "[Error] Unknown expression identifier `x`. (UNKNOWN_IDENTIFIER)",
        ),
        ("Code: 1. DB::Exception: Code: 1. DB::Exception: tb.`a` and stb.b. (X)", "[Error] `a` and stb.b. (X)"),
        ("Timeout exceeded: elapsed 2 s: While processing x. (TIMEOUT_EXCEEDED)", "[Error] The query exceeded"),
    ],
)
def test_an_engine_error_reaches_the_caller_in_tinybirds_words(engine_says, caller_reads):
    from usage_analytics.local.engine import EngineError, _first_line
    from usage_analytics.local.settings import DEFAULTS
    from usage_analytics.local.workspace import query_error

    answer = query_error(EngineError(_first_line(RuntimeError(engine_says))), DEFAULTS, "tb")
    assert answer.message.startswith(caller_reads) and "While" not in answer.message

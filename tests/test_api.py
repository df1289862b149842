"""Tinybird's HTTP surface: shapes, status codes and error bodies, on whatever target the suite runs."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
import requests

PIPE = "feature_usage"


def test_health(target):
    assert requests.get(target.url("/v0/health"), timeout=5).status_code == 200


def test_json_has_tinybird_shape(target):
    body = target.pipe(PIPE).json()
    assert list(body)[:3] == ["meta", "data", "rows"]
    assert body["meta"] == [
        {"name": "feature", "type": "String"},
        {"name": "usage_count", "type": "UInt64"},
        {"name": "unique_users", "type": "UInt64"},
    ]
    assert body["rows"] == len(body["data"]) > 0
    assert set(body["statistics"]) == {"elapsed", "rows_read", "bytes_read"}
    assert all(isinstance(row["usage_count"], int) for row in body["data"])


def test_csv_and_ndjson_carry_the_same_rows(target):
    rows = target.data(PIPE)
    as_csv = list(csv.DictReader(io.StringIO(target.pipe(PIPE, fmt="csv").text)))
    as_ndjson = [json.loads(line) for line in target.pipe(PIPE, fmt="ndjson").text.splitlines()]
    assert as_ndjson == rows
    assert [(r["feature"], int(r["usage_count"])) for r in as_csv] == [(r["feature"], r["usage_count"]) for r in rows]


@pytest.mark.parametrize("token", [None, "", "p.not-a-token"])
def test_missing_or_unknown_token_is_403(target, token):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = requests.get(target.url(f"/v0/pipes/{PIPE}.json"), headers=headers, timeout=5)
    assert response.status_code == 403
    assert "token" in response.json()["error"].lower()


def test_token_in_query_string_works(target):
    response = requests.get(target.url(f"/v0/pipes/{PIPE}.json"), params={"token": target.token}, timeout=5)
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/v0/pipes/no_such_pipe.json", f"/v0/pipes/{PIPE}.xml", "/v0/nothing"])
def test_unknown_resources_are_404_with_error_body(target, path):
    response = requests.get(target.url(path), headers=target.auth(), timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]


@pytest.mark.deviation(
    "stricter",
    "declared types are checked before rendering and the error names the parameter; "
    "Tinybird's own type errors may name only the value",
)
@pytest.mark.parametrize(
    ("param", "value"),
    [("start_date", "yesterday"), ("end_date", "2025-13-45 00:00:00"), ("start_date", "2025-01-01 25:00:00")],
)
def test_bad_parameter_is_400_naming_it(target, param, value):
    response = target.pipe(PIPE, {param: value})
    assert response.status_code == 400
    assert param in response.json()["error"]


def test_parameter_values_never_become_sql(target):
    sneaky = "x' OR '1'='1"
    assert target.data(PIPE, {"feature": sneaky}) == []


def test_sql_reads_datasources(target):
    assert target.sql("SELECT count() AS n FROM events")[0]["n"] > 0


@pytest.mark.parametrize(
    "query",
    [
        "DROP TABLE events",
        "INSERT INTO events (event_id) VALUES ('x')",
        "SELECT * FROM events SETTINGS readonly = 0",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    ],
)
def test_sql_refuses_anything_but_reads(target, query):
    response = requests.get(target.url("/v0/sql"), params={"q": query}, headers=target.auth(), timeout=5)
    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert target.sql("SELECT count() AS n FROM events")[0]["n"] > 0


@pytest.mark.embedded
def test_pipe_answers_say_what_rendering_and_the_engine_cost(target):
    started = time.perf_counter()
    response = target.pipe(PIPE)
    wall_ms = (time.perf_counter() - started) * 1000
    timings = dict(part.strip().split(";", 1) for part in response.headers["Server-Timing"].split(","))
    assert set(timings) == {"render", "engine", "cache"} and timings["cache"] in ('desc="hit"', 'desc="miss"')
    render, engine = (float(timings[part].removeprefix("dur=")) for part in ("render", "engine"))
    assert render >= 0 and engine > 0 and render + engine < wall_ms  # parts of what the client waited for

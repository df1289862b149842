"""The discoverable API: a valid OpenAPI 3 document of every endpoint, and `usage-analytics query`."""

from __future__ import annotations

import json
import subprocess

import oracle
import pytest
import requests
from conftest import run_cli
from openapi_spec_validator import validate

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def spec(target) -> dict:
    response = requests.get(target.url("/v0/pipes/openapi.json"), headers=target.auth(), timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_document_is_valid_openapi_3(spec):
    validate(spec)


def test_every_endpoint_is_documented_with_its_columns_in_order(spec):
    documented = {path.removeprefix("/v0/pipes/").removesuffix(".json") for path in spec["paths"]}
    assert documented == set(oracle.ENDPOINTS)
    for name, columns in oracle.ENDPOINTS.items():
        operation = spec["paths"][f"/v0/pipes/{name}.json"]["get"]
        row = operation["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]["items"]
        assert list(row["properties"]) == list(columns), name
        assert all(p["description"] for p in operation["parameters"]), name


def test_one_endpoint_has_its_own_document(target):
    response = requests.get(target.url("/v0/pipes/feature_usage/openapi.json"), headers=target.auth(), timeout=30)
    assert list(response.json()["paths"]) == ["/v0/pipes/feature_usage.json"]
    missing = requests.get(target.url("/v0/pipes/nope/openapi.json"), headers=target.auth(), timeout=30)
    assert missing.status_code == 404


def run_query(target, *args) -> subprocess.CompletedProcess:
    return run_cli(target, "query", *args)


def test_query_prints_a_table_json_and_csv(target):
    rows = target.data("feature_usage", {"start_date": "2025-05-01 00:00:00"})
    table = run_query(target, "feature_usage", "-p", "start_date=2025-05-01 00:00:00")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["feature", "usage_count", "unique_users"]
    assert lines[2].split() == [rows[0]["feature"], str(rows[0]["usage_count"]), str(rows[0]["unique_users"])]
    assert lines[-1] == f"({len(rows)} rows)"
    as_json = run_query(target, "feature_usage", "-p", "start_date=2025-05-01 00:00:00", "--format", "json")
    assert json.loads(as_json.stdout)["data"] == rows
    as_csv = run_query(target, "feature_usage", "-p", "start_date=2025-05-01 00:00:00", "--format", "csv")
    assert len(as_csv.stdout.splitlines()) == len(rows) + 1


def test_query_reports_errors_in_one_line(target):
    result = run_query(target, "feature_usage", "-p", "start_date=never")
    assert result.returncode != 0
    assert "HTTP 400" in result.stderr and "start_date" in result.stderr


def test_explain_gives_the_sql_and_the_plan_to_admins_only(target):
    params = {"start_date": "2025-05-01 00:00:00", "end_date": "2025-05-31 23:59:59", "tenant_id": "tenant_acme"}
    url = target.url("/v0/pipes/user_activity/explain")
    answer = target.http.get(url, params=params, headers=target.auth())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "tenant_acme" in body["debug_query"] and "api_logs" in body["debug_query"]
    assert "ReadFromMergeTree" in body["query_explain"]
    # the SQL it shows is the SQL that runs: the same rows through /v0/sql
    rows = target.sql(body["debug_query"])
    assert rows == target.data("user_activity", params)
    analyst = next(
        t["token"]
        for t in target.http.get(target.url("/v0/tokens"), headers=target.auth()).json()["tokens"]
        if t["name"] == "analyst"
    )
    assert target.http.get(url, params=params, headers=target.auth(analyst)).status_code == 403
    assert target.http.get(target.url("/v0/pipes/nope/explain"), headers=target.auth()).status_code == 404

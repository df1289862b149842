"""Tinybird's token model on the embedded server: admin, static datafile tokens and JWTs."""

from __future__ import annotations

import os
import subprocess
import time

import jwt
import pytest
import requests
from conftest import CLI, ServerProcess, event, run_cli, slice_project

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server for the module: no test changes what another reads (each JWT is minted by its own test)."""
    root = tmp_path_factory.mktemp("tokens")
    server = ServerProcess(slice_project(root / "project"), root / "data")
    target = server.start()
    rows = [event(event_id=f"e{i}", user_id=f"u{i}", feature=f) for i, f in enumerate(["search", "search", "billing"])]
    assert target.send("events", rows).json()["successful_rows"] == 3
    yield server, target
    server.stop()


def cli(target, *args) -> subprocess.CompletedProcess:
    return run_cli(target, "token", *args)


def analyst_token(target) -> str:
    result = cli(target, "show", "analyst")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def status(target, method: str, path: str, token: str | None, **kwargs) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, target.url(path), headers=headers, timeout=10, **kwargs).status_code


def test_who_may_do_what(served):
    _, target = served
    analyst = analyst_token(target)
    pipe, events, sql = "/v0/pipes/feature_usage.json", "/v0/events?name=events&wait=true", "/v0/sql?q=SELECT+1"
    row = '{"event_id": "x"}'
    table = [
        ("admin reads a pipe", "GET", pipe, target.token, {}, 200),
        ("admin appends", "POST", events, target.token, {"data": row}, 200),
        ("admin runs SQL", "GET", sql, target.token, {}, 200),
        ("admin lists tokens", "GET", "/v0/tokens", target.token, {}, 200),
        ("analyst reads its pipe", "GET", pipe, analyst, {}, 200),
        ("analyst cannot append", "POST", events, analyst, {"data": row}, 403),
        ("analyst cannot run SQL", "GET", sql, analyst, {}, 403),
        ("analyst cannot list tokens", "GET", "/v0/tokens", analyst, {}, 403),
        ("analyst cannot build", "POST", "/v0/build", analyst, {}, 403),
        ("no token reads nothing", "GET", pipe, None, {}, 403),
        ("unknown token reads nothing", "GET", pipe, "p.nope", {}, 403),
        ("no token appends nothing", "POST", events, None, {"data": row}, 403),
        ("anyone checks health", "GET", "/v0/health", None, {}, 200),
    ]
    got = [(name, status(target, method, path, token, **kw)) for name, method, path, token, kw, _ in table]
    assert got == [(name, expected) for name, *_, expected in table]


def test_tokens_are_listed_and_stable_across_restarts(served):
    server, target = served
    listing = cli(target, "ls")
    assert "analyst: PIPES:READ:feature_usage" in listing.stdout
    assert "admin_token: ADMIN" in listing.stdout
    before = analyst_token(target)
    server.stop()
    target = server.start()
    assert analyst_token(target) == before


def mint(target, *args) -> str:
    result = cli(target, "jwt", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_jwt_with_fixed_params_only_ever_sees_its_slice(served):
    _, target = served
    token = mint(target, "--pipe", "feature_usage", "--fixed", "feature=search", "--ttl", "10m")
    expected = [{"feature": "search", "usage_count": 2, "unique_users": 2}]
    for params in ({}, {"feature": "billing"}, {"feature": "x' OR '1'='1"}):
        assert target.pipe("feature_usage", params, token=token).json()["data"] == expected


def reader_claims(target) -> dict:
    """The claims of a JWT that may read feature_usage for a minute, in `target`'s workspace."""
    workspace = requests.get(target.url("/v0/workspace"), headers=target.auth(), timeout=5).json()["id"]
    scope = [{"type": "PIPES:READ", "resource": "feature_usage"}]
    return {"workspace_id": workspace, "name": "t", "exp": int(time.time()) + 60, "scopes": scope}


def test_jwts_that_must_be_refused(served):
    _, target = served
    good = reader_claims(target)
    cases = {
        "expired": jwt.encode({**good, "exp": int(time.time()) - 5}, target.token, algorithm="HS256"),
        "badly signed": jwt.encode(good, "not-the-admin-token-but-long-enough-for-hs256", algorithm="HS256"),
        "other workspace": jwt.encode({**good, "workspace_id": "w2"}, target.token, algorithm="HS256"),
        "no expiry": jwt.encode({k: v for k, v in good.items() if k != "exp"}, target.token, algorithm="HS256"),
        "garbage": "a.b.c",
    }
    for name, token in cases.items():
        response = target.pipe("feature_usage", token=token)
        assert response.status_code == 403, name
        assert response.json()["error"].startswith("Invalid token"), name
    assert target.pipe("feature_usage", token=jwt.encode(good, target.token, algorithm="HS256")).status_code == 200


def test_a_jwt_reads_only_its_pipes(served):
    _, target = served
    token = mint(target, "--pipe", "feature_usage")
    assert status(target, "GET", "/v0/sql?q=SELECT+1", token) == 403
    assert status(target, "POST", "/v0/events?name=events", token, data="{}") == 403


def test_a_jwt_rate_limit_answers_429_with_retry_after(served):
    _, target = served
    token = mint(target, "--pipe", "feature_usage", "--rps", "2")
    answers = [target.pipe("feature_usage", token=token) for _ in range(5)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and all(a.status_code in (200, 429) for a in answers)
    assert limited[0].headers["Retry-After"] == "1"
    time.sleep(1.1)
    assert target.pipe("feature_usage", token=token).status_code == 200


@pytest.mark.parametrize(("args", "message"), [(["--ttl", "soon"], "--ttl"), (["--fixed", "novalue"], "--fixed")])
def test_jwt_command_names_bad_options(served, args, message):
    _, target = served
    result = cli(target, "jwt", "--pipe", "feature_usage", *args)
    assert result.returncode != 0 and message in result.stderr


TENANT_SCOPED = {
    "time_series_metrics": {"granularity": "day"},
    "rate_limit_usage": {"at": "2025-06-01 12:00:00"},
    "endpoint_performance": {},
    "user_activity": {},
    "error_analysis": {},
    "geographic_distribution": {},
    "usage_metering": {},
}


@pytest.mark.parametrize("tenant", ["tenant_acme", "tenant_umbrella"])
def test_a_tenant_jwt_sees_exactly_its_tenants_rows(target, tenant):
    import cases
    import oracle
    from matching import assert_rows_match

    rows = cases.load_rows()
    pipes = [arg for name in TENANT_SCOPED for arg in ("--pipe", name)]
    token = mint(target, *pipes, "--fixed", f"tenant_id={tenant}")
    for endpoint, params in TENANT_SCOPED.items():
        expected = oracle.expected(endpoint, {**params, "tenant_id": tenant}, rows)
        assert expected, endpoint
        for asked in ({}, {"tenant_id": "tenant_globex"}, {"tenant_id": "' OR '1'='1"}):
            response = target.pipe(endpoint, {**params, **asked}, token=token)
            assert response.status_code == 200, response.text
            assert_rows_match(response.json()["data"], expected)
        assert target.pipe("api_usage_by_tenant", token=token).status_code == 403


def test_a_jwt_signed_with_either_workspace_admin_token_is_accepted_and_not_with_the_user_token(served):
    """Tinybird signs JWTs with the workspace's admin token; Tinybird Local's /tokens gives `admin_token` and
    `workspace_admin_token`, and `usage-analytics token jwt` without TB_TOKEN signs with the second."""
    _, target = served
    local = requests.get(target.url("/tokens"), timeout=5).json()
    claims = reader_claims(target)
    for name in ("admin_token", "workspace_admin_token"):
        signed = jwt.encode(claims, local[name], algorithm="HS256")
        assert target.pipe("feature_usage", token=signed).status_code == 200, name
    refused = target.pipe("feature_usage", token=jwt.encode(claims, local["user_token"], algorithm="HS256"))
    assert refused.status_code == 403 and refused.json()["error"].startswith("Invalid token")
    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, local["workspace_admin_token"], algorithm="HS256")
    assert target.pipe("feature_usage", token=expired).json()["error"] == "Invalid token: the JWT has expired"
    without_token = {k: v for k, v in os.environ.items() if k not in ("TB_TOKEN", "TB_HOST")}
    args = [CLI, "token", "jwt", "--pipe", "feature_usage", "--host", target.base_url]
    minted = subprocess.run(args, capture_output=True, text=True, env=without_token, timeout=60)
    assert minted.returncode == 0, minted.stderr
    assert target.pipe("feature_usage", token=minted.stdout.strip()).status_code == 200

"""Browsers call the API from any page (CORS, preflight included), and the server serves a folder of static files
(the dashboard) at /dashboard/, with the attacks next to each: no CORS on the one route that hands out the admin
token, no rebinding of a page's host name onto it, no file outside the folder."""

from __future__ import annotations

import http.client

import pytest
import requests
from conftest import ServerProcess

pytestmark = pytest.mark.embedded

PAGE = "<!doctype html><title>dash</title><script type=module src=app.js></script>"

DATASOURCE = """\
TOKEN "ingest" APPEND

SCHEMA >
    `ts` DateTime `json:$.ts`,
    `name` String `json:$.name`

ENGINE "MergeTree"
ENGINE_SORTING_KEY "ts"
"""

ENDPOINT = """\
TOKEN "reader" READ

NODE counted
SQL >
    SELECT name, count() AS hits FROM clicks GROUP BY name ORDER BY name

TYPE ENDPOINT
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("cors")
    project = root / "project"
    (project / "datasources").mkdir(parents=True)
    (project / "endpoints").mkdir()
    (project / "datasources" / "clicks.datasource").write_text(DATASOURCE)
    (project / "endpoints" / "counted.pipe").write_text(ENDPOINT)
    (project / "secret.txt").write_text("not for the web")
    (project / "dashboard").mkdir()
    (project / "dashboard" / "index.html").write_text(PAGE)
    (project / "dashboard" / "app.js").write_text("console.log('hi')\n")
    server = ServerProcess(project, root / "data")
    target = server.start()
    yield server, target
    server.stop()


def tokens(target) -> dict[str, str]:
    answer = requests.get(target.url("/v0/tokens"), headers=target.auth(), timeout=5).json()
    return {t["name"]: t["token"] for t in answer["tokens"]}


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v0/events?name=clicks", "POST"), ("/v0/pipes/counted.json", "GET"), ("/v0/sql", "POST")],
)
def test_a_preflight_is_answered_for_the_api(served, path, method):
    """Fetch with an Authorization header from another origin sends a preflight first; Tinybird's API allows any
    origin (its docs ingest from the browser with a Bearer token)."""
    _, target = served
    answer = requests.options(
        target.url(path),
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=5,
    )
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert method in answer.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]


def test_answers_and_errors_carry_cors_so_a_page_can_read_them(served):
    _, target = served
    names = tokens(target)
    sent = requests.post(
        target.url("/v0/events?name=clicks&wait=true"),
        data='{"ts": "2025-01-01 00:00:00", "name": "a"}\n',
        headers={"Authorization": f"Bearer {names['ingest']}", "Origin": "https://app.example"},
        timeout=10,
    )
    assert sent.status_code in (200, 202) and sent.headers["Access-Control-Allow-Origin"] == "*"
    read = requests.get(target.url("/v0/pipes/counted.json"), headers={"Authorization": f"Bearer {names['reader']}"})
    assert read.json()["data"] == [{"name": "a", "hits": 1}]
    assert (
        read.headers["Access-Control-Allow-Origin"] == "*"
        and "Server-Timing" in read.headers["Access-Control-Expose-Headers"]
    )
    refused = requests.get(target.url("/v0/pipes/counted.json"), headers={"Authorization": "Bearer nope"}, timeout=5)
    assert refused.status_code == 403 and refused.headers["Access-Control-Allow-Origin"] == "*"
    assert "error" in refused.json()


def test_the_route_that_hands_out_admin_tokens_gets_no_cors(served):
    """Any page the developer opens could otherwise read the admin token of the server on their laptop."""
    _, target = served
    answer = requests.get(target.url("/tokens"), headers={"Origin": "https://evil.example"}, timeout=5)
    assert answer.status_code == 200  # the tb CLI still gets it
    assert not any(h.lower().startswith("access-control-") for h in answer.headers)
    preflight = requests.options(
        target.url("/tokens"),
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        timeout=5,
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_a_page_rebinding_its_host_name_to_loopback_does_not_get_the_tokens(served):
    """DNS rebinding: evil.example resolves to 127.0.0.1, so the page is same-origin with the server, but its
    requests say `Host: evil.example:PORT`."""
    _, target = served
    answer = requests.get(target.url("/tokens"), headers={"Host": f"evil.example:{served[0].port}"}, timeout=5)
    assert answer.status_code == 403 and "localhost" in answer.json()["error"]
    assert "admin_token" not in answer.text
    for host in (f"localhost:{served[0].port}", f"127.0.0.1:{served[0].port}", "[::1]", "localhost"):
        assert requests.get(target.url("/tokens"), headers={"Host": host}, timeout=5).status_code == 200, host


def test_the_dashboard_folder_is_served_with_a_strict_policy(served):
    _, target = served
    page = requests.get(target.url("/dashboard/"), timeout=5)
    assert page.status_code == 200 and page.text == PAGE
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src *" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    script = requests.get(target.url("/dashboard/app.js"), timeout=5)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    missing = requests.get(target.url("/dashboard/nothing.js"), timeout=5)
    assert missing.status_code == 404 and "error" in missing.json()


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """A request line sent as it is (no client normalises the dots away)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    connection.endheaders()
    answer = connection.getresponse()
    return answer.status, answer.read()


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/../secret.txt",
        "/dashboard/%2e%2e/secret.txt",
        "/dashboard/..%2fsecret.txt",
        "/dashboard/%2e%2e%2fsecret.txt",
    ],
)
def test_no_file_outside_the_folder_is_served(served, path):
    server, _ = served
    status, body = raw_get(server.port, path)
    assert status in (400, 404) and b"not for the web" not in body


def test_a_symlink_out_of_the_folder_is_not_followed(served):
    server, target = served
    link = server.project_dir / "dashboard" / "leak.txt"
    link.symlink_to(server.project_dir / "secret.txt")
    try:
        answer = requests.get(target.url("/dashboard/leak.txt"), timeout=5)
        assert answer.status_code == 404 and "not for the web" not in answer.text
    finally:
        link.unlink()


def test_a_dashboard_folder_that_does_not_exist_is_a_cli_error(tmp_path):
    server = ServerProcess(tmp_path, tmp_path / "data")
    server.extra_args = ["--dashboard", str(tmp_path / "nowhere")]
    with pytest.raises(RuntimeError, match="nowhere"):
        server.start(timeout=20)


def test_the_server_prints_the_dashboard_url_with_a_read_token(served):
    server, target = served
    names = tokens(target)
    assert f"dashboard: http://127.0.0.1:{server.port}/dashboard/#token={names['reader']}" in server.output()

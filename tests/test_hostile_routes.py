"""Hostile callers on the routes around the data: who may list what, `url=` imports, malformed tokens and bodies.

Each answer is Tinybird's status with a JSON `error`: never a 5xx, never a dropped connection. Writes go to one
server of this module, on a small project with a token of each kind; read-only checks use the session server.
"""

from __future__ import annotations

import gzip
import http.server
import io
import json
import shutil
import socket
import threading
import time
from datetime import time as clock
from datetime import timedelta

import jwt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from conftest import ROOT, ServerProcess, count, event, slice_project, token_values

from usage_analytics.local.launcher import free_port

pytestmark = pytest.mark.embedded

IMPORT_LIMIT = 256 * 1024  # the module server's --max-import-bytes
TYPED = """DESCRIPTION >
    Values of every Parquet kind, readable by a token of its own.

TOKEN "typed_reader" READ

SCHEMA >
    `id` String `json:$.id`,
    `t` String `json:$.t`,
    `d` Float64 `json:$.d`

ENGINE "MergeTree"
ENGINE_SORTING_KEY "id"
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = slice_project(tmp_path_factory.mktemp("hostile") / "project")
    for path in ("datasources/events_daily_users_mv.datasource", "pipes/events_daily_users.pipe"):
        (root / path).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / path, root / path)
    shutil.copy(ROOT / "endpoints/daily_active_users.pipe", root / "endpoints")
    (root / "datasources/typed.datasource").write_text(TYPED)
    return root


@pytest.fixture(scope="module")
def running(project):
    process = ServerProcess(project, project.parent / "data")
    process.extra_args = ["--max-import-bytes", str(IMPORT_LIMIT)]
    target = process.start()
    yield process, target
    process.stop()


@pytest.fixture(scope="module")
def server(running):
    return running[1]


def jwt_for(target, pipe: str, **claims) -> str:
    workspace = target.http.get(target.url("/v0/workspace"), headers=target.auth()).json()["id"]
    payload = {
        "workspace_id": workspace,
        "name": "tenant",
        "exp": int(time.time()) + 600,
        "scopes": [{"type": "PIPES:READ", "resource": pipe}],
        **claims,
    }
    return jwt.encode(payload, target.token, algorithm="HS256")


@pytest.fixture(scope="module")
def tokens(server) -> dict[str, str]:
    return {"admin": server.token, **token_values(server), "jwt": jwt_for(server, "feature_usage")}


def get(target, path: str, token: str) -> requests.Response:
    return target.http.get(target.url(path), headers=target.auth(token), timeout=10)


def test_datasources_are_listed_and_described_only_for_tokens_that_may_read_them(server, tokens):
    listed = {
        who: sorted(d["name"] for d in get(server, "/v0/datasources", tokens[who]).json()["datasources"])
        for who in ("admin", "typed_reader", "ingest", "analyst", "jwt")
    }
    assert listed == {
        "admin": ["events", "events_daily_users_mv", "typed"],
        "typed_reader": ["typed"],
        "ingest": [],
        "analyst": [],
        "jwt": [],
    }
    described = [
        (path, who, get(server, path, tokens[who]).status_code)
        for path, who in [
            ("/v0/datasources/typed", "admin"),
            ("/v0/datasources/typed", "typed_reader"),
            ("/v0/datasources/events", "typed_reader"),
            ("/v0/datasources/events", "ingest"),
            ("/v0/datasources/events", "jwt"),
            ("/v0/datasources/nope", "typed_reader"),  # no hint whether it exists
            ("/v0/datasources/nope", "admin"),
        ]
    ]
    assert [status for *_, status in described] == [200, 200, 403, 403, 403, 403, 404], described
    refused = get(server, "/v0/datasources/events", tokens["jwt"])
    assert "DATASOURCES:READ" in refused.json()["error"]


def test_pipes_and_their_openapi_are_listed_only_for_tokens_that_may_read_them(server, tokens):
    listed = {
        who: sorted(p["name"] for p in get(server, "/v0/pipes", tokens[who]).json()["pipes"])
        for who in ("admin", "analyst", "jwt", "ingest")
    }
    assert listed == {
        "admin": ["daily_active_users", "events_daily_users", "feature_usage"],
        "analyst": ["daily_active_users", "feature_usage"],
        "jwt": ["feature_usage"],
        "ingest": [],
    }
    documented = get(server, "/v0/pipes/openapi.json", tokens["jwt"]).json()
    assert [path.split("/")[-1] for path in documented["paths"]] == ["feature_usage.json"]
    for pipe in ("daily_active_users", "nope"):
        assert get(server, f"/v0/pipes/{pipe}/openapi.json", tokens["jwt"]).status_code == 403, pipe


def test_a_job_is_shown_to_admin_and_to_tokens_with_a_scope_on_its_datasource(server, tokens):
    body = json.dumps(event(event_id="job-1", user_id="u-job")).encode()
    answer = server.http.post(
        server.url("/v0/datasources"), params={"name": "events", "format": "ndjson"}, data=body, headers=server.auth()
    )
    assert answer.status_code == 200, answer.text
    path = f"/v0/jobs/{answer.json()['job_id']}"
    seen = {who: get(server, path, tokens[who]).status_code for who in ("admin", "ingest", "typed_reader", "jwt")}
    assert seen == {"admin": 200, "ingest": 200, "typed_reader": 403, "jwt": 403}
    assert get(server, "/v0/jobs/nope", tokens["admin"]).status_code == 404


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves `files` (path -> body, headers) and remembers every path asked for."""

    files: dict[str, tuple[bytes, dict[str, str]]] = {}
    asked: list[str] = []

    def do_GET(self):
        self.asked.append(self.path)
        body, headers = self.files.get(self.path, (b"not here", {"X-Status": "404"}))
        self.send_response(int(headers.get("X-Status", 200)))
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def files():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Files
    httpd.shutdown()
    httpd.server_close()


def ndjson_rows(prefix: str, n: int) -> bytes:
    return "\n".join(json.dumps(event(event_id=f"{prefix}-{i}", user_id=f"u{i}")) for i in range(n)).encode()


def import_url(target, url: str, token: str, name: str = "events") -> requests.Response:
    return target.http.post(
        target.url("/v0/datasources"),
        params={"name": name, "mode": "append"},
        data={"url": url},
        headers=target.auth(token),
    )


def test_url_imports_over_http_stream_gzip_are_bounded_and_need_the_append_scope(server, tokens, files):
    base, handler = files
    big = ndjson_rows("big", IMPORT_LIMIT // 150)  # more than the limit once inflated
    assert len(big) > IMPORT_LIMIT
    handler.files.update(
        {
            "/plain.ndjson": (ndjson_rows("plain", 3), {}),
            "/encoded.ndjson": (gzip.compress(ndjson_rows("encoded", 4)), {"Content-Encoding": "gzip"}),
            "/file.ndjson.gz": (gzip.compress(ndjson_rows("gzfile", 5)), {"Content-Type": "application/gzip"}),
            "/big.ndjson": (big, {}),
            "/bomb.ndjson": (gzip.compress(big), {"Content-Encoding": "gzip"}),
            "/bomb.ndjson.gz": (gzip.compress(big), {}),
            "/broken.ndjson": (b"\x1f\x8b\x08\x00not really gzip", {"Content-Encoding": "gzip"}),
        }
    )
    for path, prefix, rows in [("/plain.ndjson", "plain", 3), ("/encoded.ndjson", "encoded", 4)]:
        answer = import_url(server, base + path, tokens["ingest"])  # Tinybird: DATASOURCES:APPEND suffices
        assert answer.status_code == 200 and answer.json()["statistics"]["row_count"] == rows, answer.text
        assert count(server, "events", f"event_id LIKE '{prefix}-%'") == rows
    answer = import_url(server, base + "/file.ndjson.gz", tokens["admin"])
    assert answer.status_code == 200 and answer.json()["statistics"]["row_count"] == 5, answer.text

    refused = {path: import_url(server, base + path, tokens["admin"]) for path in ("/big.ndjson", "/bomb.ndjson")}
    refused["/bomb.ndjson.gz"] = import_url(server, base + "/bomb.ndjson.gz", tokens["admin"])
    assert {p: r.status_code for p, r in refused.items()} == dict.fromkeys(refused, 413)
    assert all("256 KB" in r.json()["error"] for r in refused.values())
    assert count(server, "events", "event_id LIKE 'big-%'") == 0

    missing = import_url(server, base + "/nope.ndjson", tokens["admin"])
    assert missing.status_code == 400 and missing.json()["error"] == f"could not fetch {base}/nope.ndjson: HTTP 404"
    broken = import_url(server, base + "/broken.ndjson", tokens["admin"])
    assert broken.status_code == 400 and broken.json()["error"].startswith(f"could not fetch {base}/broken.ndjson")

    handler.asked.clear()
    for who in ("analyst", "typed_reader", "jwt"):
        answer = import_url(server, base + "/plain.ndjson", tokens[who])
        assert answer.status_code == 403 and "DATASOURCES:APPEND" in answer.json()["error"], who
    assert handler.asked == []  # a token that may not append makes the server fetch nothing


def _listener(answer: bytes | None) -> socket.socket:
    """A port that is open: it accepts and then closes, after sending `answer` (not HTTP)."""
    sock = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                if answer:
                    conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return sock


def test_url_fetch_errors_do_not_tell_an_open_port_from_a_closed_one(server, tokens):
    silent, chatty = _listener(None), _listener(b"SSH-2.0-OpenSSH_9.6\r\n")
    ports = {"closed": free_port(), "open": silent.getsockname()[1], "open, not http": chatty.getsockname()[1]}
    try:
        errors = {}
        for kind, port in ports.items():
            url = f"http://127.0.0.1:{port}/x.ndjson"
            answer = import_url(server, url, tokens["ingest"])
            assert answer.status_code == 400, (kind, answer.text)
            errors[kind] = answer.json()["error"].replace(url, "<url>")
    finally:
        silent.close()
        chatty.close()
    assert set(errors.values()) == {"could not fetch <url>: the connection failed"}, errors


def test_file_urls_are_confined_to_the_project_and_data_dirs(running, project, tmp_path):
    process, server = running
    inside = project / "more.ndjson"
    inside.write_bytes(ndjson_rows("inside", 2))
    answer = import_url(server, inside.as_uri(), server.token)
    assert answer.status_code == 200 and answer.json()["statistics"]["row_count"] == 2, answer.text
    outside = tmp_path / "secret.ndjson"
    outside.write_bytes(ndjson_rows("outside", 2))
    (project / "link.ndjson").symlink_to(outside)
    (process.data_dir / "link.ndjson").symlink_to(outside)
    quarantined = count(server, "events_quarantine")
    refused = {
        url: import_url(server, url, server.token)
        for url in [
            "file:///proc/self/environ",
            "file:///no/such/file.ndjson",
            outside.as_uri(),
            (project / "link.ndjson").as_uri(),
            (process.data_dir / "link.ndjson").as_uri(),
            f"file://{project}/{'../' * 30}{str(outside).lstrip('/')}",
        ]
    }
    messages = {answer.json()["error"].replace(url, "<url>") for url, answer in refused.items()}
    assert {answer.status_code for answer in refused.values()} == {403}
    assert messages == {"url=<url>: only files in the project folder or the data dir can be imported"}
    missing = import_url(server, (project / "nope.ndjson").as_uri(), server.token)
    assert missing.status_code == 400 and "no such file" in missing.json()["error"]
    assert count(server, "events", "event_id LIKE 'outside-%'") == 0
    assert count(server, "events_quarantine") == quarantined  # nothing of /proc/self/environ either


def test_a_lone_surrogate_escape_quarantines_its_row_and_the_good_row_lands(server):
    good, bad = event(event_id="sur-good", user_id="u1"), event(event_id="sur-bad", user_id="u2")
    lone = json.dumps(bad).replace('"u2"', '"\\ud800"')  # a UTF-16 half that no UTF-8 string can hold
    for body in (f"[{json.dumps(good)}, {lone}]", lone):
        answer = server.http.post(
            server.url("/v0/events"), params={"name": "events", "wait": "true"}, data=body, headers=server.auth()
        )
        assert answer.status_code == 200, answer.text
    assert count(server, "events", "event_id LIKE 'sur-%'") == 1
    reasons = server.sql("SELECT c__error FROM events_quarantine WHERE position(c__error[1], 'sur-bad') > 0")
    assert len(reasons) == 2 and all(r["c__error"][0].startswith("invalid JSON object") for r in reasons)


def test_parquet_time_and_duration_values_are_stored_as_text_and_seconds(server):
    table = pa.table(
        {
            "id": ["a", "b"],
            "t": pa.array([clock(10, 11, 12), clock(23, 0, 0, 500)], pa.time64("us")),
            "d": pa.array([timedelta(seconds=3, milliseconds=500), timedelta(minutes=2)], pa.duration("us")),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    answer = server.http.post(
        server.url("/v0/datasources"),
        params={"name": "typed", "format": "parquet"},
        files={"parquet": ("typed.parquet", sink.getvalue())},
        headers=server.auth(),
    )
    assert answer.status_code == 200 and answer.json()["statistics"]["row_count"] == 2, answer.text
    assert server.sql("SELECT id, t, d FROM typed ORDER BY id") == [
        {"id": "a", "t": "10:11:12", "d": 3.5},
        {"id": "b", "t": "23:00:00.000500", "d": 120},
    ]


def test_json_rows_for_an_aggregating_datasource_are_a_400_naming_it(server):
    row = json.dumps({"day": "2025-05-01", "users": "u1"})
    answers = [
        server.http.post(
            server.url("/v0/events"), params={"name": "events_daily_users_mv"}, data=row, headers=server.auth()
        ),
        server.http.post(
            server.url("/v0/datasources"),
            params={"name": "events_daily_users_mv", "format": "ndjson"},
            data=row,
            headers=server.auth(),
        ),
    ]
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert "events_daily_users_mv" in answer.json()["error"] and "AggregateFunction" in answer.json()["error"]


@pytest.mark.parametrize(
    "claims",
    [
        {"scopes": "PIPES:READ"},
        {"scopes": [1]},
        {"scopes": [{"type": "PIPES:READ", "resource": ["feature_usage"]}]},
        {"scopes": [{"type": "PIPES:READ", "resource": "feature_usage", "fixed_params": ["tenant"]}]},
        {"limits": "fast"},
        {"limits": {"rps": "fast"}},
        {"limits": {"rps": [1]}},
        {"limits": {"rps": -1}},
    ],
    ids=str,
)
def test_jwt_claims_of_the_wrong_type_are_an_invalid_token(target, claims):
    answer = target.pipe("feature_usage", token=jwt_for(target, "feature_usage", **claims))
    assert answer.status_code == 403 and answer.json()["error"].startswith("Invalid token: "), answer.text


@pytest.mark.parametrize("where", ["url", "header"])
def test_a_request_head_past_two_megabytes_is_a_431_with_json_and_the_server_serves_on(target, where):
    """The HTTP parser keeps a URL or header of any length: the server counts the head's bytes and refuses it."""
    filler = "x" * (3 * 1024 * 1024)
    path, header = ("/v0/pipes/feature_usage.json?feature=" + filler, "") if where == "url" else ("/v0/health", filler)
    host, port = target.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Filler: {header}\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ") and json.loads(body)["error"].startswith("Request head too large")
    assert requests.get(target.url("/v0/health"), timeout=10).status_code == 200


def test_a_megabyte_authorization_header_is_a_431_with_json(target):
    answer = requests.get(
        target.url("/v0/pipes/feature_usage.json"), headers={"Authorization": "Bearer " + "x" * 1024 * 1024}, timeout=30
    )
    assert answer.status_code == 431 and "header" in answer.json()["error"]

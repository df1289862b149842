"""The Events API client: batching bounds, reconciliation, and delivery through injected faults."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from conftest import ServerProcess, emptied, event, run_cli, slice_project

from usage_analytics.ingest import EventsClient, batches

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ingest_client")
    process = ServerProcess(slice_project(root / "project"), root / "data")
    yield process.start()
    process.stop()


@pytest.fixture
def target(server):
    """The module's server with `events` (and its quarantine) emptied: each test counts exactly the rows it sent."""
    return emptied(server)


def rows(n: int) -> list[bytes]:
    return [json.dumps(event(event_id=f"e{i}", user_id=f"u{i % 7}", feature="f")).encode() for i in range(n)]


def test_batches_are_bounded_by_rows_and_bytes():
    lines = [b"x" * 99] * 1000
    by_rows = list(batches(lines, max_rows=300, max_bytes=10**6))
    assert [len(b) for b in by_rows] == [300, 300, 300, 100]
    by_bytes = list(batches(lines, max_rows=10**6, max_bytes=1000))
    assert all(sum(len(line) + 1 for line in b) <= 1000 for b in by_bytes)
    assert sum(len(b) for b in by_bytes) == 1000
    with pytest.raises(ValueError, match="exceeds"):
        list(batches([b"y" * 2000], max_rows=10, max_bytes=1000))


class FaultyProxy:
    """A real HTTP proxy in front of the server that fails the first requests in scripted ways."""

    def __init__(self, upstream: str, faults: list[str]):
        self.upstream, self.faults, self.seen = upstream, list(faults), []
        self.forwarded, self.answered = 0, threading.Condition()  # requests the server has answered
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fault = proxy.faults.pop(0) if proxy.faults else "forward"
                proxy.seen.append(fault)
                if fault.startswith("slow"):  # "slow:2.5": answer late (the request still goes through)
                    time.sleep(float(fault.split(":")[1]))
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault in ("429", "503"):
                    self.send_response(int(fault))
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = requests.post(f"{proxy.upstream}{self.path}", data=body, headers=headers, timeout=60)
                with proxy.answered:
                    proxy.forwarded += 1
                    proxy.answered.notify_all()
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_forwarded(self, n: int, timeout: float = 30) -> None:
        with self.answered:
            assert self.answered.wait_for(lambda: self.forwarded >= n, timeout), (self.forwarded, n)

    def close(self):
        self.server.shutdown()


def test_client_reconciles_and_survives_429_503_and_dropped_connections(tmp_path, target):
    proxy = FaultyProxy(target.base_url, ["429", "503", "drop", "forward", "429"])
    try:
        client = EventsClient(proxy.url, target.token, max_rows=1000, concurrency=1, backoff=0.01)
        sent = rows(5000) + [b'{"event_id": "bad", "timestamp": "never"}']
        totals = client.send("events", sent, failed_path=tmp_path / "failed.ndjson")
    finally:
        proxy.close()
    assert {"429", "503", "drop"} <= set(proxy.seen)
    assert (totals.read, totals.sent, totals.acknowledged, totals.quarantined, totals.failed) == (
        5001,
        5001,
        5000,
        1,
        0,
    )
    assert totals.batches == 6 and totals.failed_file is None
    assert target.sql("SELECT count() AS n, uniqExact(event_id) AS ids FROM events") == [{"n": 5000, "ids": 5000}]


def test_slow_answers_are_waited_for_and_a_timed_out_batch_is_sent_again(tmp_path, target):
    """A slow answer within the timeout lands once. One that outlasts it was written all the same, so the
    client's retry duplicates that batch: at-least-once, as the README says, and the ids show it."""
    proxy = FaultyProxy(target.base_url, ["slow:0.5", "slow:2.5"])
    try:
        client = EventsClient(proxy.url, target.token, max_rows=1000, concurrency=1, backoff=0.01, timeout=1.5)
        totals = client.send("events", rows(3000), failed_path=tmp_path / "failed.ndjson")
    finally:
        proxy.close()
    assert proxy.seen[:2] == ["slow:0.5", "slow:2.5"] and len(proxy.seen) == 4  # 3 batches + 1 retry
    assert (totals.acknowledged, totals.failed) == (3000, 0), totals.summary()
    proxy.wait_forwarded(4)  # the stalled request reaches the server after the client gave up on it
    counts = target.sql("SELECT count() AS n, uniqExact(event_id) AS ids FROM events")
    assert counts == [{"n": 4000, "ids": 3000}]


def test_undelivered_batches_are_written_and_can_be_resent(tmp_path, target):
    client = EventsClient("http://127.0.0.1:9", target.token, max_rows=100, retries=1, backoff=0.01)
    totals = client.send("events", rows(250), failed_path=tmp_path / "failed.ndjson")
    assert (totals.acknowledged, totals.failed, totals.failed_file) == (0, 250, str(tmp_path / "failed.ndjson"))
    resend = run_cli(target, "ingest", "events", totals.failed_file, cwd=tmp_path)
    assert resend.returncode == 0, resend.stderr
    assert "acknowledged 250" in resend.stdout
    assert target.sql("SELECT count() AS n FROM events")[0]["n"] == 250


def test_cli_names_a_missing_file(tmp_path):
    result = run_cli(None, "ingest", "events", str(tmp_path / "nope.ndjson"))
    assert result.returncode != 0
    assert "no such file" in result.stderr


def test_load_sends_every_fixture_file(tmp_path, target):
    fixtures = tmp_path / "mine"
    fixtures.mkdir()
    (fixtures / "events.ndjson").write_bytes(b"\n".join(rows(1234)) + b"\n")
    result = run_cli(target, "load", "--fixtures", str(fixtures))
    assert result.returncode == 0, result.stderr
    assert "events: rows read 1234, sent 1234, acknowledged 1234, quarantined 0, failed 0" in result.stdout
    assert target.sql("SELECT count() AS n FROM events")[0]["n"] == 1234

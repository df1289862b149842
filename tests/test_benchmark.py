"""`usage-analytics bench --quick`: the benchmark harness runs end to end and its results are complete.

This checks the harness, never a timing: every measurement is present, the peers gave the same answers
as the endpoints, the roll-ups were timed against their raw forms, and the plots are real PNG files.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT, run_cli

from usage_analytics import bench
from usage_analytics.peers import PEER_ENDPOINTS
from usage_analytics.rawforms import RAW_FORMS

pytestmark = pytest.mark.embedded

STATS = {"median_ms", "p95_ms", "p99_ms", "calls"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = run_cli(None, "bench", "--quick", "--out", str(out), "--cache-dir", str(out / "cache"), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.loads((out / "quick.json").read_text()), result.stdout


def test_every_endpoint_is_measured_over_http_and_directly(quick_run):
    _, results, _ = quick_run
    clients = results["profile"]["clients"]
    assert set(results["endpoints"]) == set(bench.MIX)
    for name, entry in results["endpoints"].items():
        for key in ("http_1_client", f"http_{clients}_clients", "direct_chdb", "server_own_ms"):
            assert set(entry[key]) == STATS and entry[key]["calls"] > 0, (name, key)
        assert isinstance(entry["server_overhead_ms"], float)
        assert entry["server_own_ms"]["calls"] == entry["http_1_client"]["calls"], name  # one per timed call
        assert ("raw_to_rollup" in entry) == (name in RAW_FORMS), name


def test_peers_answer_the_same_and_are_timed(quick_run):
    _, results, _ = quick_run
    assert set(results["peers"]["load_seconds"]) == {"duckdb", "postgresql"}
    for name in PEER_ENDPOINTS:
        for peer in ("duckdb", "postgresql"):
            entry = results["peers"][name][peer]
            assert entry["rows_agree"] is True, (name, peer)
            assert set(entry) >= STATS and entry["ratio_to_ours_http"] > 0


def test_startup_ingest_and_reports(quick_run):
    out, results, stdout = quick_run
    assert results["startup_with_data_seconds"] > 0 and results["commit"] and results["machine"]
    assert (
        results["ingest"]["client"]["rows"] == results["rows"]["api_logs"]
        and results["ingest"]["client"]["failed"] == 0
    )
    assert results["ingest"]["ratio_client_to_raw"] > 0 and results["ingest"]["ratio_client_to_chdb_with_views"] > 0
    assert len(results["ingest"]["rounds"]) == results["profile"]["ingest_rounds"]
    # the with-views baseline feeds every api_logs roll-up, as the server does
    feeding = [p for p in (ROOT / "pipes").glob("*.pipe") if re.search(r"\bFROM api_logs\b", p.read_text())]
    assert results["ingest"]["chdb_with_views"]["materialized_views"] == len(feeding) > 0
    table = (out / "quick.md").read_text()
    assert table in stdout and all(f"`{name}`" in table for name in bench.MIX)
    for plot in ("quick-latency.png", "quick-peers.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({plot})" in table

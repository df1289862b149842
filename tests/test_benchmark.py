"""`usage-analytics bench --quick`: the benchmark harness runs end to end and its results are complete.

This checks the harness, never a timing: every figure of issue 18 is present (cold reads at 1 and N clients, the
result cache's hits and misses, restart and memory, growth across two scales, single-stream and client ingest
against chDB with and without views, the peers), the peers gave the same answers as the endpoints, every target is
stated met or missed (or why not measured), and BENCHMARKS.md's sections take a run.

The run starts five servers and PostgreSQL (about a minute on two cores), so it is a slow harness: `make test-slow`
and CI's slow job run it; `make test` runs the parts that need no server.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import ROOT, run_cli

from usage_analytics.bench import MIX, report
from usage_analytics.bench.endpoints import WINDOW_ODD, cold_sets, defaults
from usage_analytics.bench.peers import PEER_ENDPOINTS
from usage_analytics.bench.rawforms import RAW_FORMS

pytestmark = pytest.mark.embedded

STATS = {"median_ms", "p95_ms", "p99_ms", "calls"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    args = ("bench", "--quick", "--project-dir", str(ROOT), "--out", str(out), "--cache-dir", str(out / "cache"))
    result = run_cli(None, *args, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.loads((out / "quick.json").read_text()), result.stdout


@pytest.mark.slow
def test_every_endpoint_is_read_cold_at_1_and_n_clients_and_directly(quick_run):
    _, results, _ = quick_run
    clients = results["profile"]["clients"]
    assert set(results["endpoints"]) == set(MIX)
    for name, entry in results["endpoints"].items():
        for key in ("cold_1_client", f"cold_{clients}_clients", "direct_chdb", "server_own_ms"):
            assert set(entry[key]) == STATS and entry[key]["calls"] > 0, (name, key)
        assert entry[f"cold_{clients}_clients"]["calls"] == clients * results["profile"]["calls_per_client"]
        assert entry["cache_hits_in_cold_runs"] == 0, name  # cold: never answered from the result cache
        assert entry["server_own_ms"]["calls"] == entry["cold_1_client"]["calls"], name  # one per timed call
        assert ("raw_to_rollup" in entry) == (name in RAW_FORMS), name


@pytest.mark.slow
def test_peers_answer_the_same_and_are_timed(quick_run):
    _, results, _ = quick_run
    assert set(results["peers"]["load_seconds"]) == {"duckdb", "postgresql"}
    for name in PEER_ENDPOINTS:
        for peer in ("duckdb", "postgresql"):
            entry = results["peers"][name][peer]
            assert entry["rows_agree"] is True, (name, peer)
            assert set(entry) >= STATS and entry["ratio_to_ours_http"] > 0


@pytest.mark.slow
def test_repeated_reads_come_from_the_result_cache(quick_run):
    _, results, _ = quick_run
    cached = results["cached_reads"]
    assert cached["clients"] == results["profile"]["clients"]
    assert cached["hit_steady"]["calls"] > 0 and cached["miss"]["calls"] > 0  # a build made the first round miss
    assert cached["p95_ms"] == cached["hit_steady"]["p95_ms"]


@pytest.mark.slow
def test_restart_memory_and_growth(quick_run):
    _, results, _ = quick_run
    assert results["first_load_seconds"] > 0 and results["restart"]["seconds_to_healthy"] > 0
    assert results["memory"]["rss_at_rest_bytes"] > 0 and results["memory"]["rss_peak_under_clients_bytes"] > 0
    scales = results["growth"]["scales"]
    assert list(scales) == ["tiny", "quick"] and scales["tiny"]["rows"] < scales["quick"]["rows"]
    for point in scales.values():
        assert set(point["medians_ms"]) == set(MIX)
    assert set(results["growth"]["exponents"]) == set(MIX)
    assert all(isinstance(x, float) for x in results["growth"]["exponents"].values())


@pytest.mark.slow
def test_ingest_single_stream_and_client_against_chdb(quick_run):
    _, results, _ = quick_run
    ingest = results["ingest"]
    assert ingest["single_stream"]["rows"] == ingest["project_client"]["rows"] == ingest["rows"] > 0
    assert ingest["project_client"]["failed"] == 0
    assert ingest["chdb_bare_table"]["rows"] == ingest["chdb_with_views"]["rows"] == ingest["rows"]
    for ratio in ("single_stream_to_views", "single_stream_to_bare", "client_to_views", "client_to_bare"):
        assert ingest[ratio] > 0, ratio
    assert len(ingest["rounds"]) == results["profile"]["ingest_rounds"]
    # the with-views baseline feeds every api_logs roll-up, as the server does
    feeding = [p for p in (ROOT / "pipes").glob("*.pipe") if re.search(r"\bFROM api_logs\b", p.read_text())]
    assert ingest["chdb_with_views"]["materialized_views"] == len(feeding) > 0


@pytest.mark.slow
def test_every_target_is_stated_and_the_report_is_written(quick_run, tmp_path):
    out, results, stdout = quick_run
    stated = report.targets(results)
    assert len(stated) == 9 and all(t["status"] in ("met", "missed", "reported", "not measured") for t in stated)
    table = (out / "quick.md").read_text()
    assert table in stdout and all(f"`{name}`" in table for name in MIX)
    assert all(f"| **{t['status']}** |" in table for t in stated)
    for plot in ("quick-latency.png", "quick-peers.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({plot})" in table
    # BENCHMARKS.md takes the run: its latest-run section replaced, a history row on top, the rest kept
    copy = tmp_path / "BENCHMARKS.md"
    shutil.copy(ROOT / "BENCHMARKS.md", copy)
    before = copy.read_text()
    report.record(copy, results, table)
    after = copy.read_text()
    assert table in after and report.history_row(results) in after
    assert after.split(report.LATEST[0])[0] == before.split(report.LATEST[0])[0]
    assert (
        after.split(report.LATEST[1])[1].replace(report.history_row(results) + "\n", "")
        == before.split(report.LATEST[1])[1]
    )


def test_defaults_come_from_the_pipes_and_unaligned_windows_are_never_asked_twice():
    assert defaults(ROOT, "endpoint_performance")["limit"] == "10"
    assert defaults(ROOT, "retention_cohorts")["weeks"] == "8"
    assert "start_date" not in defaults(ROOT, "feature_usage")
    odd = [name for name, sets in MIX.items() if WINDOW_ODD in sets]
    assert len(odd) > 5
    for name in odd:
        sets = cold_sets(name, 12) + cold_sets(name, 12, offset=1000)
        bases = [MIX[name][k % len(MIX[name])] for k in range(12)] * 2
        moved = [s for s, base in zip(sets, bases, strict=True) if WINDOW_ODD.items() <= base.items()]
        assert len(moved) >= 4 and len({tuple(sorted(s.items())) for s in moved}) == len(moved), name
        assert all(s["start_date"] != WINDOW_ODD["start_date"] for s in moved), name

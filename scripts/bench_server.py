"""Start-up time and Events API ingest rate of the embedded server, with a raw chDB insert as the floor.

Usage: .venv/bin/python scripts/bench_server.py [--rows 500000] [--out bench-results/server.json]
Prints a Markdown block to paste into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from usage_analytics import bench
from usage_analytics.generator import generate

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000, help="events rows to ingest")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results/server.json")
    args = parser.parse_args()

    startup = bench.startup_seconds(ROOT, bench.free_port())
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), rows=args.rows, sources=["events"])
        lines = (Path(tmp) / "events.ndjson").read_bytes().splitlines()
    raw = bench.raw_chdb_insert(ROOT / "datasources/events.datasource", lines)
    with tempfile.TemporaryDirectory() as data:
        server = bench.start_server(ROOT, Path(data), bench.free_port())
        try:
            api = bench.events_api_ingest(server, "events", lines)
        finally:
            server.stop()
    fsync_cost = {}
    for mode, extra in (("default", ()), ("fsync", ("--fsync",))):
        with tempfile.TemporaryDirectory() as data:
            server = bench.start_server(ROOT, Path(data), bench.free_port(), extra=extra)
            try:
                fsync_cost[mode] = bench.batch_latency_ms(server, "events", lines[:100_000], 1000)
            finally:
                server.stop()
    results = {
        "machine": bench.machine(),
        "date": bench.now_utc(),
        "startup_seconds": startup,
        "ingest_events_api": api,
        "ingest_raw_chdb": raw,
        "ingest_ratio_api_to_raw": api["rows_per_s"] / raw["rows_per_s"],
        "batch_of_1000_ms": fsync_cost,
    }
    bench.dump(results, args.out)
    print(f"- machine: {results['machine']}; date: {results['date']}")
    print(f"- start-up to healthy /v0/health, fixtures loaded: median {bench.median(startup):.2f} s {startup}")
    print(
        f"- Events API ingest of {api['rows']} events rows (8 MB batches, wait=true): "
        f"{api['rows_per_s']:,.0f} rows/s, {api['mb_per_s']:.1f} MB/s; raw chDB JSONEachRow insert of the "
        f"same rows: {raw['rows_per_s']:,.0f} rows/s; ratio {results['ingest_ratio_api_to_raw']:.2f}"
    )
    print(
        f"- one acknowledged batch of 1000 events rows: median {fsync_cost['default']:.1f} ms; "
        f"with --fsync {fsync_cost['fsync']:.1f} ms ({fsync_cost['fsync'] / fsync_cost['default']:.2f}x)"
    )


if __name__ == "__main__":
    main()

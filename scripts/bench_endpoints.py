"""Endpoint latency over HTTP on the embedded server, and each roll-up against the raw-table question.

Usage: .venv/bin/python scripts/bench_endpoints.py --data DIR [--rounds 10] [--out bench-results/endpoints.json]
DIR holds <datasource>.ndjson files (e.g. `usage-analytics generate --rows ... --out DIR`); they are
loaded into a fresh data dir as the server's fixtures, which also times a start-up with that data.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from usage_analytics import bench
from usage_analytics.rawforms import RAW_FORMS, raw_query

ROOT = Path(__file__).resolve().parent.parent


def project_with_fixtures(tmp: Path, data: Path) -> Path:
    """The repository's datafiles with `data` as its fixtures folder."""
    project = tmp / "project"
    project.mkdir()
    for folder in ("datasources", "pipes", "endpoints"):
        shutil.copytree(ROOT / folder, project / folder)  # copied: the loader does not follow folder links
    (project / "fixtures").symlink_to(data.resolve())
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for the second measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results/endpoints.json")
    args = parser.parse_args()

    rows = {p.stem: sum(1 for _ in p.open("rb")) for p in sorted(args.data.glob("*.ndjson"))}
    results = {"machine": bench.machine(), "date": bench.now_utc(), "rows": rows, "endpoints": {}}
    with tempfile.TemporaryDirectory() as tmp:
        server = bench.start_server(project_with_fixtures(Path(tmp), args.data), Path(tmp) / "data", bench.free_port())
        results["startup_with_data_seconds"] = server.seconds_to_healthy
        try:
            for name, param_sets in bench.MIX.items():
                times = bench.time_calls(bench.endpoint_caller(server, name), param_sets, args.rounds)
                entry = {"median_ms": bench.median(times), "p95_ms": bench.percentile(times, 95)}
                busy = bench.time_calls_concurrently(
                    lambda name=name: bench.endpoint_caller(server, name), param_sets, args.rounds, args.clients
                )
                entry[f"median_ms_{args.clients}_clients"] = bench.median(busy)
                entry[f"p95_ms_{args.clients}_clients"] = bench.percentile(busy, 95)
                if name in RAW_FORMS:
                    raw = bench.time_calls(
                        bench.sql_caller(server, lambda p, name=name: raw_query(name, p)), param_sets, args.rounds
                    )
                    entry["raw_median_ms"] = bench.median(raw)
                    entry["raw_to_rollup"] = entry["raw_median_ms"] / entry["median_ms"]
                results["endpoints"][name] = entry
                print(name, {k: round(v, 2) for k, v in entry.items()}, flush=True)
        finally:
            server.stop()
    bench.dump(results, args.out)
    print(f"\n- machine: {results['machine']}; date: {results['date']}; rows: {rows}")
    print(f"- start-up to healthy with this data loaded as fixtures: {results['startup_with_data_seconds']:.1f} s\n")
    n = args.clients
    head = f"median ms, {n} clients | p95 ms, {n} clients"
    print(f"| endpoint | median ms | p95 ms | {head} | raw median ms | raw / roll-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, e in results["endpoints"].items():
        raw = f"{e['raw_median_ms']:.1f} | {e['raw_to_rollup']:.1f}x" if "raw_median_ms" in e else "- | -"
        busy = f"{e[f'median_ms_{n}_clients']:.1f} | {e[f'p95_ms_{n}_clients']:.1f}"
        print(f"| `{name}` | {e['median_ms']:.1f} | {e['p95_ms']:.1f} | {busy} | {raw} |")


if __name__ == "__main__":
    main()

"""A run's results as Markdown: each target of issue 18 met or missed with the measurement that limits it, the
tables behind them, plots, and BENCHMARKS.md's latest-run section and history table."""

from __future__ import annotations

import re
from pathlib import Path

from .rawforms import RAW_FORMS

MB = 1024 * 1024
LATEST = ("<!-- bench:latest (written by `usage-analytics bench`) -->", "<!-- /bench:latest -->")
HISTORY = "<!-- bench:history (a row per recorded run, newest first) -->"
HISTORY_HEADER = (
    "| date | commit | scale | worst cold p95, 8 clients | `user_activity` median, 1 client | single stream / chDB "
    "with views | client / chDB with views | slowest peer ratio | restart |\n"
    "|---|---|---|---:|---:|---:|---:|---:|---:|"
)
GROWTH_LIMIT = 0.5  # "clearly slower than the rows": 10x the rows costs at most 10**0.5 = 3.2x the time


def _cold(results: dict) -> str:
    return f"cold_{results['profile']['clients']}_clients"


def targets(results: dict) -> list[dict]:
    """Each target of issue 18: what it asks, the measurement that decides it, and met / missed (or why not)."""
    clients, out = results["profile"]["clients"], []

    def add(name: str, status: str, measured: str) -> None:
        out.append({"target": name, "status": status, "measured": measured})

    cached = results.get("cached_reads", {})
    if "p95_ms" in cached:
        miss_p95 = cached.get("miss", {}).get("p95_ms", float("nan"))
        add(
            f"repeated dashboard reads from the result cache: p95 <= 10 ms, {clients} clients",
            "met" if cached["p95_ms"] <= 10 else "missed",
            f"hits between invalidations: p95 {cached['p95_ms']:.1f} ms, p50 {cached['p50_ms']:.1f} ms "
            f"({cached['hit_steady']['calls']} calls); misses: p95 {miss_p95:.0f} ms",
        )
    else:
        add("repeated dashboard reads from the result cache: p95 <= 10 ms, 8 clients", "not measured", cached["status"])
    endpoints = results["endpoints"]
    cold = _cold(results)
    worst = max(endpoints, key=lambda n: endpoints[n][cold]["p95_ms"])
    over = [n for n, e in endpoints.items() if e[cold]["p95_ms"] > 150]
    add(
        f"cold reads: p95 <= 150 ms at {clients} clients, every endpoint",
        "missed" if over else "met",
        f"worst `{worst}` p95 {endpoints[worst][cold]['p95_ms']:.0f} ms; {len(over)} of {len(endpoints)} over 150 ms"
        + (f" ({', '.join(over)})" if over else ""),
    )
    ua = endpoints["user_activity"]["cold_1_client"]["median_ms"]
    add("cold reads: `user_activity` median <= 50 ms, 1 client", "met" if ua <= 50 else "missed", f"{ua:.1f} ms")
    ing = results["ingest"]
    add(
        f"single stream ({ing['batch_rows']:,}-row NDJSON, wait=true, no gzip) >= 0.7 of chDB with the views",
        "met" if ing["single_stream_to_views"] >= 0.7 else "missed",
        f"{ing['single_stream_to_views']:.2f} (to the bare table {ing['single_stream_to_bare']:.2f})",
    )
    add(
        "the project's client >= 0.85 of chDB with the views",
        "met" if ing["client_to_views"] >= 0.85 else "missed",
        f"{ing['client_to_views']:.2f} (to the bare table {ing['client_to_bare']:.2f})",
    )
    peer_rows = {k: v for k, v in results["peers"].items() if k != "load_seconds"}
    if peer_rows:
        ratios = [(p["ratio_to_ours_http"], n, peer) for n, by in peer_rows.items() for peer, p in by.items()]
        slowest, name, peer = min(ratios)
        disagree = [n for n, by in peer_rows.items() if not all(p["rows_agree"] for p in by.values())]
        add(
            "ahead of DuckDB and PostgreSQL on every benchmarked endpoint (peer median / ours > 1), same answers",
            "met" if slowest > 1 and not disagree else "missed",
            f"closest: {peer} on `{name}` at {slowest:.2f}x ours"
            + (f"; answers differ on {', '.join(disagree)}" if disagree else ""),
        )
    else:
        add("ahead of DuckDB and PostgreSQL on every endpoint", "not measured", "run without --peers")
    memory = results["memory"]
    add(
        "restart on the existing data dir, and RSS at rest and under load: reported",
        "reported",
        f"{results['restart']['seconds_to_healthy']:.1f} s to healthy; RSS {memory['rss_at_rest_bytes'] / MB:.0f} MB "
        f"at rest, {memory['rss_peak_under_clients_bytes'] / MB:.0f} MB peak under {memory['clients']} clients",
    )
    exponents = results["growth"]["exponents"]
    rollups = {n: x for n, x in exponents.items() if n in RAW_FORMS and x is not None}
    if rollups:
        steepest = max(rollups, key=rollups.get)
        add(
            f"growth: roll-up readers clearly slower than the rows (exponent <= {GROWTH_LIMIT})",
            "met" if rollups[steepest] <= GROWTH_LIMIT else "missed",
            f"steepest roll-up reader `{steepest}` {rollups[steepest]:.2f}, "
            f"over {', '.join(results['growth']['scales'])}",
        )
    else:
        add("growth: roll-up readers clearly slower than the rows", "not measured", "one scale only")
    add("`make test` <= 120 s of pytest", "not measured", results["make_test"]["status"])
    return out


def _ms(stats: dict) -> str:
    return f"{stats['median_ms']:.1f} / {stats['p95_ms']:.1f}"


def markdown(results: dict, command: str, plots: list[Path]) -> str:
    clients, cold = results["profile"]["clients"], _cold(results)
    memory, ing = results["memory"], results["ingest"]
    off_by = results["restart"]["result_cache_off_by"] or "no result cache"
    hits = sum(e["cache_hits_in_cold_runs"] for e in results["endpoints"].values())
    lines = [
        f"### `{command}`: scale {results['scale']}, {results['date']}, commit {results['commit']}",
        "",
        f"- machine: {results['machine']}",
        f"- rows: {', '.join(f'{k} {v:,}' for k, v in results['rows'].items())}",
        f"- first load (this data as fixtures, through the ingest path) to healthy: "
        f"{results['first_load_seconds']:.1f} s, then {results['merges_settled_seconds']:.0f} s until background "
        "merges settled",
        f"- restart on that data dir to healthy: {results['restart']['seconds_to_healthy']:.1f} s; RSS at rest "
        f"{memory['rss_at_rest_bytes'] / MB:.0f} MB, peak under {clients} clients "
        f"{memory['rss_peak_under_clients_bytes'] / MB:.0f} MB",
        f"- cold reads: result cache off (`{off_by}`; {hits} of the answers were cache hits), unaligned windows "
        "moved a second per call, one warm-up pass of the mix first; bench servers run with `--query-timeout 600`",
        "",
        "| target | measured (the limiting figure) | |",
        "|---|---|---|",
        *[f"| {t['target']} | {t['measured']} | **{t['status']}** |" for t in targets(results)],
        "",
    ]
    scales = list(results["growth"]["scales"])
    lines += [
        f"| endpoint | cold, 1 client median / p95 ms | cold, {clients} clients median / p95 ms "
        f"| direct chDB median ms | server's own ms (median) | raw table / roll-up "
        f"| median ms at {' / '.join(scales)} | exponent of rows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in results["endpoints"].items():
        raw = f"{e['raw_to_rollup']:.1f}x" if "raw_to_rollup" in e else "-"
        at = " / ".join(f"{results['growth']['scales'][s]['medians_ms'][name]:.1f}" for s in scales)
        exponent = results["growth"]["exponents"][name]
        slope = "-" if exponent is None else f"{exponent:.2f}"
        lines.append(
            f"| `{name}` | {_ms(e['cold_1_client'])} | {_ms(e[cold])} | {e['direct_chdb']['median_ms']:.1f} "
            f"| {e['server_own_ms']['median_ms']:.2f} | {raw} | {at} | {slope} |"
        )
    stream, client = ing["single_stream"], ing["project_client"]
    bare, views = ing["chdb_bare_table"], ing["chdb_with_views"]
    rounds = ", ".join(f"{r['single_stream_to_views']:.2f}" for r in ing["rounds"])
    lines += [
        "",
        f"Ingest, {ing['rows']:,} `api_logs` rows in {ing['batch_rows']:,}-row batches (median of {len(ing['rounds'])} "
        f"rounds; single stream / with views by round: {rounds}):",
        "",
        "| path | rows/s | / chDB with views | / chDB bare table |",
        "|---|---:|---:|---:|",
        f"| one client, uncompressed NDJSON, `wait=true`, one request at a time | {stream['rows_per_s']:,.0f} "
        f"| {ing['single_stream_to_views']:.2f} | {ing['single_stream_to_bare']:.2f} |",
        f"| the project's client (`usage-analytics send`: gzip, 2 in flight) | {client['rows_per_s']:,.0f} "
        f"| {ing['client_to_views']:.2f} | {ing['client_to_bare']:.2f} |",
        f"| chDB insert, same table with its {views['materialized_views']} materialized views | "
        f"{views['rows_per_s']:,.0f} | 1 | |",
        f"| chDB insert, bare table (same columns, engine, keys) | {bare['rows_per_s']:,.0f} | | 1 |",
    ]
    peer_rows = {k: v for k, v in results["peers"].items() if k != "load_seconds"}
    if peer_rows:
        loads = results["peers"].get("load_seconds", {})
        lines += [
            "",
            "Peers on the same data and questions (median ms; ratio = peer / ours cold over HTTP, above 1 means we "
            f"are faster; load: {', '.join(f'{k} {v:.0f} s' for k, v in loads.items())}):",
            "",
            "| endpoint | ours HTTP | ours direct | DuckDB | PostgreSQL | DuckDB / ours | PostgreSQL / ours "
            "| answers agree | timing quantiles vs exact percentiles |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        nan = float("nan")
        for name, by_peer in peer_rows.items():
            ours = results["endpoints"][name]
            duck, pg = by_peer.get("duckdb", {}), by_peer.get("postgresql", {})
            agree = all(p.get("rows_agree") for p in by_peer.values())
            gaps = [p["percentile_median_gap"] for p in by_peer.values() if p.get("percentile_median_gap") is not None]
            lines.append(
                f"| `{name}` | {ours['cold_1_client']['median_ms']:.1f} | {ours['direct_chdb']['median_ms']:.1f} "
                f"| {duck.get('median_ms', nan):.1f} | {pg.get('median_ms', nan):.1f} "
                f"| {duck.get('ratio_to_ours_http', nan):.2f} | {pg.get('ratio_to_ours_http', nan):.2f} "
                f"| {'yes' if agree else '**no**'} | {f'{100 * max(gaps):.1f}% median gap' if gaps else '-'} |"
            )
    if plots:
        lines += ["", *[f"![{p.stem}]({p.as_posix()})" for p in plots]]
    return "\n".join(lines) + "\n"


def history_row(results: dict) -> str:
    endpoints, cold, ing = results["endpoints"], _cold(results), results["ingest"]
    worst = max(endpoints, key=lambda n: endpoints[n][cold]["p95_ms"])
    peer_rows = {k: v for k, v in results["peers"].items() if k != "load_seconds"}
    ratios = [p["ratio_to_ours_http"] for by in peer_rows.values() for p in by.values()]
    return (
        f"| {results['date']} | {results['commit']} | {results['scale']} "
        f"| {endpoints[worst][cold]['p95_ms']:.0f} ms (`{worst}`) "
        f"| {endpoints['user_activity']['cold_1_client']['median_ms']:.0f} ms | {ing['single_stream_to_views']:.2f} "
        f"| {ing['client_to_views']:.2f} | {f'{min(ratios):.2f}' if ratios else '-'} "
        f"| {results['restart']['seconds_to_healthy']:.1f} s |"
    )


def record(benchmarks_md: Path, results: dict, table: str) -> None:
    """Put `table` in BENCHMARKS.md as the latest run, and the run's headline figures atop its history table."""
    text = benchmarks_md.read_text()
    start, end = LATEST
    if start not in text or end not in text or HISTORY not in text:
        raise ValueError(f"{benchmarks_md} lacks the {start}, {end} and {HISTORY} markers")
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    text = f"{before}{start}\n{table}{end}{after}"
    head, tail = text.split(HISTORY, 1)
    header = re.escape(HISTORY_HEADER)
    tail = re.sub(rf"^\n{header}\n", f"\n{HISTORY_HEADER}\n{history_row(results)}\n", tail, count=1)
    benchmarks_md.write_text(head + HISTORY + tail)


def plot(results: dict, folder: Path, relative_to: Path) -> list[Path]:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    clients, cold = results["profile"]["clients"], _cold(results)
    names = list(results["endpoints"])
    series = [
        ("cold, 1 client, median", [results["endpoints"][n]["cold_1_client"]["median_ms"] for n in names]),
        (f"cold, {clients} clients, p95", [results["endpoints"][n][cold]["p95_ms"] for n in names]),
        ("direct chDB, median", [results["endpoints"][n]["direct_chdb"]["median_ms"] for n in names]),
    ]
    fig, ax = plt.subplots(figsize=(10, 7))
    height = 0.8 / len(series)
    for i, (label, values) in enumerate(series):
        ax.barh([y + i * height for y in range(len(names))], values, height=height, label=label)
    ax.set_yticks([y + 0.4 - height / 2 for y in range(len(names))], names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(150, color="black", linestyle="--", linewidth=1, label="150 ms p95 target")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("milliseconds (log scale)")
    ax.set_title(f"Endpoint latency, scale {results['scale']} ({results['date']})")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    fig.tight_layout()
    paths = [folder / f"{results['scale']}-latency.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    peer_rows = {k: v for k, v in results["peers"].items() if k != "load_seconds"}
    if peer_rows:
        fig, ax = plt.subplots(figsize=(9, 5))
        endpoints = list(peer_rows)
        for i, peer in enumerate(("duckdb", "postgresql")):
            values = [peer_rows[n].get(peer, {}).get("ratio_to_ours_http", float("nan")) for n in endpoints]
            ax.bar([x + i * 0.4 for x in range(len(endpoints))], values, width=0.4, label=peer)
        ax.set_xticks([x + 0.2 for x in range(len(endpoints))], endpoints, rotation=20, ha="right")
        ax.set_yscale("log")
        ax.axhline(1, color="black", linewidth=1)
        ax.set_ylabel("peer median / our median (above 1: we are faster)")
        ax.set_title(f"Peers on the same data, scale {results['scale']}")
        ax.legend()
        fig.tight_layout()
        paths.append(folder / f"{results['scale']}-peers.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    base = relative_to.resolve()
    return [p.resolve().relative_to(base) if p.resolve().is_relative_to(base) else p for p in paths]

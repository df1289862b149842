"""`usage-analytics bench`: the whole product measured in one run, next to the engines users would pick instead.

One run, on data from the generator (cached per scale):
1. start-up: `usage-analytics local` to a healthy /v0/health with the data loaded as fixtures;
2. endpoints: median, p95 and p99 over HTTP with 1 and with N concurrent clients, over a fixed mix of
   parameter sets (bench.MIX); then the SQL each call rendered (/v0/pipes/<name>/explain), run directly on
   chDB over the same data dir: the server's own overhead is the difference of the medians;
3. roll-ups: each roll-up-backed endpoint's SQL against the same question on the raw table (rawforms);
4. peers: DuckDB (in process) and PostgreSQL (a real server) on the same data and questions, with the
   answers checked against ours, as ratios to ours;
5. ingest: the Events API client into a fresh server against a raw chDB insert of the same rows.

Timings on shared machines are noisy: every comparison is a ratio measured in the same run, and the
`--quick` smoke run in the test suite checks that the results are complete, never how fast they are.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from . import bench
from .rawforms import RAW_FORMS, raw_query

ROOT = Path(__file__).resolve().parents[2]

# rows per source; tenant_rate_limits keeps the generator's own size (one row per tenant, endpoint, version)
SCALES: dict[str, dict[str, int]] = {
    "quick": {"api_logs": 20_000, "events": 3_000, "feature_events": 3_000, "app_events": 3_000},
    "small": {"api_logs": 100_000, "events": 10_000, "feature_events": 10_000, "app_events": 10_000},
    "medium": {"api_logs": 1_000_000, "events": 100_000, "feature_events": 100_000, "app_events": 100_000},
    "large": {"api_logs": 10_000_000, "events": 1_000_000, "feature_events": 1_000_000, "app_events": 1_000_000},
}
PROFILES = {  # rounds of the parameter mix: one client, each of the concurrent clients, direct, peers
    "quick": {
        "rounds": 2,
        "clients": 2,
        "busy_rounds": 1,
        "direct_rounds": 2,
        "peer_rounds": 1,
        "ingest": 20_000,
        "ingest_rounds": 1,
    },
    "full": {
        "rounds": 10,
        "clients": 8,
        "busy_rounds": 2,
        "direct_rounds": 10,
        "peer_rounds": 3,
        "ingest": 1_000_000,
        "ingest_rounds": 3,
    },
}
SEED = 7


def _stats(times: list[float]) -> dict[str, float]:
    return {
        "median_ms": bench.median(times),
        "p95_ms": bench.percentile(times, 95),
        "p99_ms": bench.percentile(times, 99),
        "calls": len(times),
    }


def ensure_data(cache: Path, scale: str, echo: Callable[[str], None]) -> Path:
    """Generated data for `scale`, made once and reused while its manifest matches."""
    from .generator import generate

    folder = cache / scale
    manifest = {"seed": SEED, "rows": SCALES[scale]}
    stamp = folder / "manifest.json"
    if stamp.exists() and json.loads(stamp.read_text()) == manifest:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for source, rows in SCALES[scale].items():
        echo(f"generating {rows:,} {source} rows into {folder}")
        generate(folder, seed=SEED, rows=rows, sources=[source])
    generate(folder, seed=SEED, sources=["tenant_rate_limits"])
    stamp.write_text(json.dumps(manifest))
    return folder


def project_with_fixtures(tmp: Path, data: Path) -> Path:
    """The repository's datafiles with `data` as the fixtures folder."""
    project = tmp / "project"
    project.mkdir()
    for folder in ("datasources", "pipes", "endpoints"):
        shutil.copytree(ROOT / folder, project / folder)  # copied: the loader does not follow folder links
    (project / "fixtures").symlink_to(data.resolve())
    return project


def _settle(server: bench.RunningServer, quiet_polls: int = 3, limit: float = 1800) -> float:
    """Wait for the background merges that follow a bulk load: measured during them, every query
    competes with merging and reads more parts than it will in steady state."""
    started, quiet = time.perf_counter(), 0
    while quiet < quiet_polls and time.perf_counter() - started < limit:
        merging = server.get("/v0/sql", {"q": "SELECT count() AS n FROM system.merges FORMAT JSON"}).json()
        quiet = quiet + 1 if merging["data"][0]["n"] == 0 else 0
        time.sleep(1)
    return time.perf_counter() - started


def _time_each(call: Callable[[object], object], inputs: list, rounds: int) -> list[float]:
    """Milliseconds of `call(x)` for each input, `rounds` times after one warm-up call."""
    times = []
    for x in inputs:
        call(x)
        for _ in range(rounds):
            started = time.perf_counter()
            call(x)
            times.append((time.perf_counter() - started) * 1000)
    return times


PERCENTILES = ("p50", "p95", "p99")


def rows_agree(ours: list[dict], theirs: list[dict]) -> bool:
    """Same rows, columns and order; floats to 1e-6 relative. Percentile columns are left out: the endpoints
    keep timing-quantile states and the peers compute exact percentiles (see `percentile_spread`)."""
    if len(ours) != len(theirs):
        return False
    for a, b in zip(ours, theirs, strict=True):
        if list(a) != list(b):
            return False
        for key, x in a.items():
            y = b[key]
            if key.startswith(PERCENTILES):
                continue
            if isinstance(x, float) or isinstance(y, float):
                if abs(float(x) - float(y)) > 1e-6 * max(abs(float(x)), abs(float(y)), 1e-9):
                    return False
            elif x != y:
                return False
    return True


def percentile_spread(ours: list[dict], theirs: list[dict]) -> float | None:
    """The median relative gap between our timing-quantile percentiles and the peer's exact ones."""
    gaps = [
        abs(float(a[k]) - float(b[k])) / max(abs(float(b[k])), 1e-9)
        for a, b in zip(ours, theirs, strict=False)
        for k in a
        if k.startswith(PERCENTILES)
    ]
    return bench.median(gaps) if gaps else None


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


class Progress:
    """A tqdm bar on stderr (a plain line per step when stderr is not a terminal)."""

    def __init__(self, total: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True, disable=not sys.stderr.isatty())
        self.plain = not sys.stderr.isatty()

    def step(self, label: str) -> None:
        self.bar.set_description(label)
        self.bar.update(1)
        if self.plain:
            print(f"[bench] {label}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def run(scale: str, quick: bool, cache: Path, peers: bool = True) -> dict:
    profile = PROFILES["quick" if quick else "full"]
    data_scale = "quick" if quick else scale
    mix = bench.MIX
    progress = Progress(3 + 2 * len(mix) + (10 if peers else 0) + 2)
    data = ensure_data(cache, data_scale, progress.bar.write)
    rows = {p.stem: sum(1 for _ in p.open("rb")) for p in sorted(data.glob("*.ndjson"))}
    results: dict = {
        "machine": bench.machine(),
        "date": bench.now_utc(),
        "commit": git_commit(),
        "scale": data_scale,
        "rows": rows,
        "profile": profile,
        "endpoints": {},
        "peers": {},
    }
    progress.step("data ready")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        server = bench.start_server(project_with_fixtures(Path(tmp), data), data_dir, bench.free_port(), timeout=7200)
        results["startup_with_data_seconds"] = server.seconds_to_healthy
        results["merges_settled_seconds"] = _settle(server)
        progress.step(f"server up in {server.seconds_to_healthy:.1f}s, merges settled")
        sqls, answers = {}, {}
        try:
            for name, param_sets in mix.items():
                caller = bench.EndpointCaller(server, name)
                one = bench.time_calls(caller, param_sets, profile["rounds"])
                inside = caller.engine_ms[len(param_sets) :]  # the timed calls, after the warm-up pass
                busy = bench.time_calls_concurrently(
                    lambda name=name: bench.EndpointCaller(server, name),
                    param_sets,
                    profile["busy_rounds"],
                    profile["clients"],
                )
                results["endpoints"][name] = {
                    "http_1_client": _stats(one),
                    "server_own_ms": _stats([wall - engine for wall, engine in zip(one, inside, strict=True)]),
                    f"http_{profile['clients']}_clients": _stats(busy),
                }
                sqls[name] = [server.get(f"/v0/pipes/{name}/explain", p).json()["debug_query"] for p in param_sets]
                answers[name] = [server.get(f"/v0/pipes/{name}.json", p).json()["data"] for p in param_sets]
                progress.step(f"HTTP {name}")
        finally:
            server.stop()
        _direct(results, sqls, data_dir, profile, progress)
    if peers:
        _peers(results, answers, data, profile, progress)
    results["ingest"] = _ingest(data, profile["ingest"], profile["ingest_rounds"])
    progress.step("ingest")
    progress.close()
    return results


def _direct(results: dict, sqls: dict, data_dir: Path, profile: dict, progress: Progress) -> None:
    """The rendered SQL straight on chDB over the server's data dir, and each roll-up's raw-table form."""
    from .local.engine import Engine

    engine = Engine(data_dir)
    engine.query("USE tb")  # the raw-table forms name tables as /v0/sql does, without the database
    try:
        for name, param_sets in bench.MIX.items():
            entry = results["endpoints"][name]
            times = _time_each(partial(engine.query, fmt="JSON"), sqls[name], profile["direct_rounds"])
            entry["direct_chdb"] = _stats(times)
            entry["server_overhead_ms"] = entry["http_1_client"]["median_ms"] - entry["direct_chdb"]["median_ms"]
            if name in RAW_FORMS:
                raw = _time_each(partial(_raw_form, engine, name), param_sets, profile["direct_rounds"])
                entry["raw_table"] = _stats(raw)
                entry["raw_to_rollup"] = entry["raw_table"]["median_ms"] / entry["direct_chdb"]["median_ms"]
            progress.step(f"direct {name}")
    finally:
        engine.close()


def _raw_form(engine, name: str, params: dict) -> bytes:
    return engine.query(raw_query(name, params), "JSON")


def _peers(results: dict, answers: dict, data: Path, profile: dict, progress: Progress) -> None:
    from . import peers as peer_engines

    for make in (peer_engines.DuckDBPeer, peer_engines.PostgresPeer):
        peer = make()
        try:
            started = time.perf_counter()
            peer.load(data)
            results["peers"].setdefault("load_seconds", {})[peer.name] = time.perf_counter() - started
            progress.step(f"{peer.name} loaded")
            for name in peer_engines.PEER_ENDPOINTS:
                param_sets = bench.MIX[name]
                ask = partial(peer.query, name)
                theirs = [ask(p) for p in param_sets]
                agree = all(rows_agree(ours, t) for ours, t in zip(answers[name], theirs, strict=True))
                spreads = [s for o, t in zip(answers[name], theirs, strict=True) if (s := percentile_spread(o, t))]
                times = _time_each(ask, param_sets, profile["peer_rounds"])
                ours = results["endpoints"][name]
                results["peers"].setdefault(name, {})[peer.name] = {
                    **_stats(times),
                    "rows_agree": agree,
                    "percentile_median_gap": bench.median(spreads) if spreads else None,
                    "ratio_to_ours_http": bench.median(times) / ours["http_1_client"]["median_ms"],
                    "ratio_to_ours_direct": bench.median(times) / ours["direct_chdb"]["median_ms"],
                }
                progress.step(f"{peer.name} {name}")
        finally:
            peer.close()


def _client_ingest(lines: list[bytes]) -> dict:
    """The project's Events API client into a fresh server."""
    from .ingest import EventsClient

    with tempfile.TemporaryDirectory() as tmp:
        server = bench.start_server(ROOT, Path(tmp), bench.free_port())
        try:
            client = EventsClient(server.base, server.token)
            started = time.perf_counter()
            totals = client.send("api_logs", lines)
            seconds = time.perf_counter() - started
        finally:
            server.stop()
    total_bytes = sum(len(line) + 1 for line in lines)
    return {
        "rows": totals.acknowledged,
        "failed": totals.failed,
        "seconds": seconds,
        "rows_per_s": totals.acknowledged / seconds,
        "mb_per_s": total_bytes / seconds / 1e6,
    }


def _ingest(data: Path, limit: int, rounds: int) -> dict:
    """The client against a bare-table chDB insert and one into the table with its views, `rounds` times
    in turn: each ratio pairs measurements taken moments apart, and the median of the rounds is reported
    (one round's ratio moves by about 0.1 on a shared machine)."""
    with open(data / "api_logs.ndjson", "rb") as handle:
        lines = [line.rstrip(b"\n") for _, line in zip(range(limit), handle, strict=False)]
    measured = []
    for _ in range(rounds):
        raw = bench.raw_chdb_insert(ROOT / "datasources/api_logs.datasource", lines)
        with_views = bench.chdb_insert_with_views(ROOT, "api_logs", lines)
        api = _client_ingest(lines)
        measured.append(
            {
                "client": api,
                "raw_chdb": raw,
                "chdb_with_views": with_views,
                "ratio_client_to_raw": api["rows_per_s"] / raw["rows_per_s"],
                "ratio_client_to_chdb_with_views": api["rows_per_s"] / with_views["rows_per_s"],
            }
        )
    middle = sorted(measured, key=lambda m: m["ratio_client_to_raw"])[(rounds - 1) // 2]
    return {
        **middle,
        "ratio_client_to_chdb_with_views": bench.median([m["ratio_client_to_chdb_with_views"] for m in measured]),
        "rounds": [{k: m[k] for k in ("ratio_client_to_raw", "ratio_client_to_chdb_with_views")} for m in measured],
    }


# ---- reporting ------------------------------------------------------------------------------------
def markdown(results: dict, command: str, plots: list[Path]) -> str:
    clients = results["profile"]["clients"]
    busy = f"http_{clients}_clients"
    lines = [
        f"### `{command}`: scale {results['scale']}, {results['date']}, commit {results['commit']}",
        "",
        f"- machine: {results['machine']}",
        f"- rows: {', '.join(f'{k} {v:,}' for k, v in results['rows'].items())}",
        f"- start-up to healthy with this data loaded: {results['startup_with_data_seconds']:.1f} s "
        f"(then {results['merges_settled_seconds']:.0f} s until background merges settled, before measuring)",
    ]
    ingest = results["ingest"]
    client, raw, views = ingest["client"], ingest["raw_chdb"], ingest["chdb_with_views"]
    rounds = ", ".join(f"{r['ratio_client_to_raw']:.2f}" for r in ingest["rounds"])
    lines.append(
        f"- ingest, {client['rows']:,} api_logs rows through the Events API client: "
        f"{client['rows_per_s']:,.0f} rows/s, "
        f"{client['mb_per_s']:.1f} MB/s; raw chDB insert into the bare table {raw['rows_per_s']:,.0f} rows/s, "
        f"ratio **{ingest['ratio_client_to_raw']:.2f}** (target 0.7; median of the rounds {rounds}); chDB insert "
        f"into the same table with its {views['materialized_views']} materialized views "
        f"{views['rows_per_s']:,.0f} rows/s, ratio **{ingest['ratio_client_to_chdb_with_views']:.2f}** "
        "(the server's own cost)"
    )
    lines += [
        "",
        f"| endpoint | 1 client median / p95 / p99 ms | {clients} clients median / p95 / p99 ms "
        "| direct chDB median ms | HTTP - direct ms | server's own ms per call (median / p95) | raw table / roll-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in results["endpoints"].items():
        one, many = e["http_1_client"], e[busy]
        raw = f"{e['raw_to_rollup']:.1f}x" if "raw_to_rollup" in e else "-"
        lines.append(
            f"| `{name}` | {one['median_ms']:.1f} / {one['p95_ms']:.1f} / {one['p99_ms']:.1f} "
            f"| {many['median_ms']:.1f} / {many['p95_ms']:.1f} / {many['p99_ms']:.1f} "
            f"| {e['direct_chdb']['median_ms']:.1f} | {e['server_overhead_ms']:.1f} "
            f"| {e['server_own_ms']['median_ms']:.2f} / {e['server_own_ms']['p95_ms']:.2f} | {raw} |"
        )
    peer_rows = {k: v for k, v in results["peers"].items() if k != "load_seconds"}
    if peer_rows:
        loads = results["peers"].get("load_seconds", {})
        lines += [
            "",
            "Peers on the same data and questions (median ms; ratio = peer / ours, above 1 means we are faster; "
            f"load: {', '.join(f'{k} {v:.0f} s' for k, v in loads.items())}):",
            "",
            "| endpoint | ours HTTP | ours direct | DuckDB | PostgreSQL | DuckDB / ours | PostgreSQL / ours "
            "| answers agree | timing quantiles vs exact percentiles |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for name, by_peer in peer_rows.items():
            ours = results["endpoints"][name]
            nan = float("nan")
            duck, pg = by_peer.get("duckdb", {}), by_peer.get("postgresql", {})
            agree = all(p.get("rows_agree") for p in by_peer.values())
            lines.append(
                f"| `{name}` | {ours['http_1_client']['median_ms']:.1f} | {ours['direct_chdb']['median_ms']:.1f} "
                f"| {duck.get('median_ms', nan):.1f} | {pg.get('median_ms', nan):.1f} "
                f"| {duck.get('ratio_to_ours_http', nan):.2f} | {pg.get('ratio_to_ours_http', nan):.2f} "
                f"| {'yes' if agree else '**no**'} | {_gap(by_peer)} |"
            )
    if plots:
        lines += ["", *[f"![{p.stem}]({p.as_posix()})" for p in plots]]
    return "\n".join(lines) + "\n"


def _gap(by_peer: dict) -> str:
    gaps = [p["percentile_median_gap"] for p in by_peer.values() if p.get("percentile_median_gap") is not None]
    return f"{100 * max(gaps):.1f}% median gap" if gaps else "-"


def plot(results: dict, folder: Path, relative_to: Path) -> list[Path]:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    clients = results["profile"]["clients"]
    names = list(results["endpoints"])
    series = [
        ("1 client, median", [results["endpoints"][n]["http_1_client"]["median_ms"] for n in names]),
        ("1 client, p95", [results["endpoints"][n]["http_1_client"]["p95_ms"] for n in names]),
        (f"{clients} clients, p95", [results["endpoints"][n][f"http_{clients}_clients"]["p95_ms"] for n in names]),
        ("direct chDB, median", [results["endpoints"][n]["direct_chdb"]["median_ms"] for n in names]),
    ]
    fig, ax = plt.subplots(figsize=(10, 7))
    height = 0.8 / len(series)
    for i, (label, values) in enumerate(series):
        ax.barh([y + i * height for y in range(len(names))], values, height=height, label=label)
    ax.set_yticks([y + 0.4 - height / 2 for y in range(len(names))], names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(50, color="black", linestyle="--", linewidth=1, label="50 ms target")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("milliseconds (log scale)")
    ax.set_title(f"Endpoint latency, scale {results['scale']} ({results['date']}, {results['commit']})")
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
    return [
        p.resolve().relative_to(relative_to.resolve()) if p.resolve().is_relative_to(relative_to.resolve()) else p
        for p in paths
    ]

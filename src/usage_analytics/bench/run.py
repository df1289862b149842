"""One benchmark run: every figure of issue 18, each measured in the same run so that ratios compare like with like.

1. data from the generator, cached per scale in the cache dir (small, medium and large for a large run: growth);
2. first load: `usage-analytics local` on the project with that data as its fixtures, until healthy, then until
   background merges settle; stopped, and started again on the same data dir: the restart time, and RSS at rest;
3. cold reads, the result cache off (`result_cache_bytes` at its minimum, where the server has one) and the mix's
   unaligned windows moved on every call (endpoints.distinct): median and p95 with one client and with N clients
   (RSS sampled meanwhile);
   then the SQL each call rendered, straight on chDB over the same data dir, and each roll-up's raw-table form;
4. repeated dashboard reads from the result cache (bench/cache.py), on a server with the cache on;
5. peers: DuckDB and PostgreSQL on the same data and questions, their answers checked against ours;
6. growth: the one-client cold medians at each smaller scale, and each endpoint's exponent of rows;
7. single-stream ingest and the project's client, against chDB inserts with and without the views.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from ..local.launcher import Connection, ServerProcess
from . import cache, ingest
from .endpoints import MIX, cold_sets
from .measure import EndpointCaller, PeakRss, median, rss_bytes, stats, time_concurrently, time_each
from .rawforms import RAW_FORMS, raw_query

# rows per source; tenant_rate_limits keeps the generator's own size (one row per tenant, endpoint, version)
SCALES: dict[str, dict[str, int]] = {
    "tiny": {"api_logs": 2_000, "events": 500, "feature_events": 500, "app_events": 500},
    "quick": {"api_logs": 8_000, "events": 2_000, "feature_events": 2_000, "app_events": 2_000},
    "small": {"api_logs": 100_000, "events": 10_000, "feature_events": 10_000, "app_events": 10_000},
    "medium": {"api_logs": 1_000_000, "events": 100_000, "feature_events": 100_000, "app_events": 100_000},
    "large": {"api_logs": 10_000_000, "events": 1_000_000, "feature_events": 1_000_000, "app_events": 1_000_000},
}
GROWTH = {  # the scales a run measures, smallest first; the last is the run's own
    "quick": ("tiny", "quick"),
    "small": ("small",),
    "medium": ("small", "medium"),
    "large": ("small", "medium", "large"),
}
PROFILES = {
    "quick": {  # the smoke run of the test suite: every figure, as few calls as give one
        "calls_1_client": 2,
        "clients": 2,
        "calls_per_client": 1,
        "growth_calls": 1,
        "direct_rounds": 1,
        "peer_rounds": 1,
        "ingest_rows": 8_000,
        "ingest_rounds": 1,
        "cache_rounds": 2,  # rounds of the whole mix by every client, from the result cache
        "cache_invalidate_every": 2,
        "warm_up": False,  # no warm-up pass over the mix before timing
        "quiet_polls": 1,  # polls of system.merges that must find none before measuring
    },
    "full": {
        "calls_1_client": 12,
        "clients": 8,
        "calls_per_client": 4,
        "growth_calls": 6,
        "direct_rounds": 5,
        "peer_rounds": 3,
        "ingest_rows": 1_000_000,
        "ingest_rounds": 3,
        "cache_rounds": 8,
        "cache_invalidate_every": 4,
        "warm_up": True,
        "quiet_polls": 3,
    },
}
SEED = 7


def _no_result_cache() -> list[str]:
    """Server flags that turn the result cache off: its byte budget at the minimum the CLI takes (no answer fits),
    where this server has one."""
    from ..local.settings import ServerSettings

    has_cache = "result_cache_bytes" in {f.name for f in fields(ServerSettings)}
    return ["--limit", "result_cache_bytes=1"] if has_cache else []


# a benchmark measures how long a query takes, so no query is cut short at the server's 10 s default
MEASURING = ["--query-timeout", "600"]


def ensure_data(cache: Path, scale: str, echo: Callable[[str], None]) -> Path:
    """Generated data for `scale`, made once and reused while its manifest matches."""
    from ..generator import generate

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


def project_with_fixtures(project_dir: Path, tmp: Path, data: Path) -> Path:
    """The project's datafiles with `data` as its fixtures folder."""
    project = ingest.copy_datafiles(project_dir, tmp / "project")
    (project / "fixtures").symlink_to(data.resolve())
    return project


def settle(server: Connection, quiet_polls: int = 3, limit: float = 1800) -> float:
    """Wait for the background merges that follow a bulk load: measured during them, every query competes with
    merging and reads more parts than it will in steady state."""
    started, quiet = time.perf_counter(), 0
    while quiet < quiet_polls and time.perf_counter() - started < limit:
        merging = server.get("/v0/sql", {"q": "SELECT count() AS n FROM system.merges FORMAT JSON"}).json()
        quiet = quiet + 1 if merging["data"][0]["n"] == 0 else 0
        time.sleep(0.5)
    return time.perf_counter() - started


def git_commit(project_dir: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=project_dir)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=project_dir)
        return (out.stdout.strip() or "unknown") + (" + uncommitted changes" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def machine() -> str:
    import os

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; "
        f"load average at start {load} (shared with other work)"
    )


class Progress:
    """A tqdm bar on stderr (a plain line per step when stderr is not a terminal)."""

    def __init__(self, total: int):
        from tqdm import tqdm

        self.plain = not sys.stderr.isatty()
        self.bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True, disable=self.plain)

    def step(self, label: str) -> None:
        self.bar.set_description(label)
        self.bar.update(1)
        if self.plain:
            print(f"[bench {datetime.now(UTC):%H:%M:%S}] {label}", file=sys.stderr, flush=True)

    def write(self, text: str) -> None:
        if self.plain:
            print(f"[bench] {text}", file=sys.stderr, flush=True)
        else:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


def _rows(folder: Path) -> dict[str, int]:
    return {p.stem: sum(1 for _ in p.open("rb")) for p in sorted(folder.glob("*.ndjson"))}


def run(project_dir: Path, scale: str, quick: bool, cache: Path, peers: bool = True) -> dict:
    project_dir = Path(project_dir).resolve()
    profile = PROFILES["quick" if quick else "full"]
    scales = GROWTH["quick" if quick else scale]
    main = scales[-1]
    progress = Progress(8 + 3 * len(MIX) + (12 if peers else 0) + len(scales))
    data = {s: ensure_data(cache, s, progress.write) for s in scales}
    results: dict = {
        "machine": machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(project_dir),
        "scale": main,
        "rows": _rows(data[main]),
        "profile": profile,
        "endpoints": {name: {} for name in MIX},
        "peers": {},
        "growth": {"scales": {}},
    }
    progress.step("data ready")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        tmp_path = Path(tmp)
        project = project_with_fixtures(project_dir, tmp_path, data[main])
        data_dir = tmp_path / "data"
        answers, sqls = _server_phase(results, project, data_dir, profile, progress)
        _direct(results, project_dir, sqls, data_dir, profile, progress)
    if peers:
        _peers(results, project_dir, answers, data[main], profile, progress)
    for small in scales[:-1]:
        _growth_point(results, project_dir, small, data[small], profile, progress)
    results["growth"]["scales"][main] = {
        "rows": sum(results["rows"].values()),
        "medians_ms": {n: e["cold_1_client"]["median_ms"] for n, e in results["endpoints"].items()},
    }
    results["growth"]["exponents"] = growth_exponents(results["growth"]["scales"])
    progress.step("growth")
    results["ingest"] = _ingest(project_dir, data[main], profile)
    progress.step("ingest")
    results["make_test"] = {"status": "measured apart, by timing `make test` itself (not by the bench)"}
    progress.close()
    return results


def _server_phase(results: dict, project: Path, data_dir: Path, profile: dict, progress: Progress):
    """First load, restart, cold reads at 1 and N clients, cached reads; the rendered SQL and answers of the mix."""
    no_cache = _no_result_cache()
    first = ServerProcess(project, data_dir, extra_args=MEASURING, log_path=data_dir.parent / "first-load.log")
    server = first.start(timeout=7200)
    results["first_load_seconds"] = first.seconds_to_healthy
    results["merges_settled_seconds"] = settle(server, profile["quiet_polls"])
    first.stop()
    progress.step(f"first load {first.seconds_to_healthy:.1f}s, merges settled")

    again = ServerProcess(project, data_dir, extra_args=MEASURING + no_cache, log_path=data_dir.parent / "restart.log")
    server = again.start(timeout=1800)
    results["restart"] = {"seconds_to_healthy": again.seconds_to_healthy, "result_cache_off_by": " ".join(no_cache)}
    settle(server, profile["quiet_polls"])
    results["memory"] = {"rss_at_rest_bytes": rss_bytes(again.pid)}
    progress.step(f"restart {again.seconds_to_healthy:.1f}s")
    sqls, answers = {}, {}
    clients, per_client = profile["clients"], profile["calls_per_client"]
    try:
        peak_busy = 0
        for name, param_sets in MIX.items():
            caller = EndpointCaller(server, name)
            warm = _warm_up(caller, param_sets, profile)
            one = time_each(caller, cold_sets(name, profile["calls_1_client"]), 1, warm_up=False)
            inside = caller.engine_ms[warm:]
            callers = [EndpointCaller(server, name) for _ in range(clients)]
            # the N clients' sets differ from the one client's and from each other's
            sets = [cold_sets(name, per_client, 1000 + 100 * i) for i in range(clients)]
            with PeakRss(again.pid) as rss:
                busy = time_concurrently(callers.__getitem__, sets.__getitem__, clients)
            peak_busy = max(peak_busy, rss.peak)
            hits = sum(c == "hit" for c in caller.cache + [v for c in callers for v in c.cache])
            entry = results["endpoints"][name]
            entry["cold_1_client"] = stats(one)
            entry["server_own_ms"] = stats([wall - engine for wall, engine in zip(one, inside, strict=True)])
            entry[f"cold_{clients}_clients"] = stats(busy)
            entry["cache_hits_in_cold_runs"] = hits
            sqls[name] = [server.get(f"/v0/pipes/{name}/explain", p).json()["debug_query"] for p in param_sets]
            answers[name] = [server.get(f"/v0/pipes/{name}.json", p).json()["data"] for p in param_sets]
            progress.step(f"cold reads {name}")
        results["memory"]["rss_peak_under_clients_bytes"] = peak_busy
        results["memory"]["clients"] = clients
    finally:
        again.stop()
    results["cached_reads"] = _cached_reads(project, data_dir, profile)
    progress.step("cached reads")
    return answers, sqls


def _warm_up(caller: EndpointCaller, param_sets: list[dict], profile: dict) -> int:
    """The mix once, untimed, when the profile asks (the first reads after a start fill ClickHouse's mark cache and
    the page cache: a dashboard's reads are warm in that sense); the number of calls made."""
    if not profile["warm_up"]:
        return 0
    for params in param_sets:
        caller(params)
    return len(param_sets)


def _cached_reads(project: Path, data_dir: Path, profile: dict) -> dict:
    """Repeated dashboard reads answered from the result cache: cache.py's measurement on a server with the cache on,
    N clients repeating the whole mix, the cache made stale by a build before every few rounds; the target reads the
    p95 of the hits between two invalidations."""
    calls = [(name, params) for name, param_sets in MIX.items() for params in param_sets]
    process = ServerProcess(project, data_dir, extra_args=MEASURING, log_path=data_dir.parent / "cached.log")
    server = process.start(timeout=1800)
    try:
        measured = cache.measure(
            server.base_url,
            server.token,
            calls,
            clients=profile["clients"],
            rounds=profile["cache_rounds"],
            invalidate_every=profile["cache_invalidate_every"],
        )
    finally:
        process.stop()
    steady = measured["hit_steady"]
    if not steady["calls"]:
        return {**measured, "status": "no answer came from the cache between two invalidations"}
    return {**measured, "p50_ms": steady["p50_ms"], "p95_ms": steady["p95_ms"]}


def _direct(results: dict, project_dir: Path, sqls: dict, data_dir: Path, profile: dict, progress: Progress) -> None:
    """The rendered SQL straight on chDB over the server's data dir, and each roll-up's raw-table form."""
    from ..local.engine import Engine

    engine = Engine(data_dir)
    engine.query("USE tb")  # the raw-table forms name tables as /v0/sql does, without the database
    warm = profile["warm_up"]
    try:
        for name, param_sets in MIX.items():
            entry = results["endpoints"][name]
            times = time_each(partial(engine.query, fmt="JSON"), sqls[name], profile["direct_rounds"], warm)
            entry["direct_chdb"] = stats(times)
            entry["server_overhead_ms"] = entry["cold_1_client"]["median_ms"] - entry["direct_chdb"]["median_ms"]
            if name in RAW_FORMS:
                ask = partial(_raw_form, engine, name, project_dir)
                entry["raw_table"] = stats(time_each(ask, param_sets, profile["direct_rounds"], warm))
                entry["raw_to_rollup"] = entry["raw_table"]["median_ms"] / entry["direct_chdb"]["median_ms"]
            progress.step(f"direct {name}")
    finally:
        engine.close()


def _raw_form(engine, name: str, project_dir: Path, params: dict) -> bytes:
    return engine.query(raw_query(name, params, project_dir), "JSON")


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
    return median(gaps) if gaps else None


def _peers(results: dict, project_dir: Path, answers: dict, data: Path, profile: dict, progress: Progress) -> None:
    from . import peers as peer_engines

    for make in (peer_engines.DuckDBPeer, peer_engines.PostgresPeer):
        peer = make(project_dir)
        try:
            started = time.perf_counter()
            peer.load(data)
            results["peers"].setdefault("load_seconds", {})[peer.name] = time.perf_counter() - started
            progress.step(f"{peer.name} loaded")
            for name in peer_engines.PEER_ENDPOINTS:
                param_sets = MIX[name]
                ask = partial(peer.query, name)
                theirs = [ask(p) for p in param_sets]
                agree = all(rows_agree(ours, t) for ours, t in zip(answers[name], theirs, strict=True))
                spreads = [
                    s for o, t in zip(answers[name], theirs, strict=True) if (s := percentile_spread(o, t)) is not None
                ]
                times = time_each(ask, param_sets, profile["peer_rounds"])
                ours = results["endpoints"][name]
                results["peers"].setdefault(name, {})[peer.name] = {
                    **stats(times),
                    "rows_agree": agree,
                    "percentile_median_gap": median(spreads) if spreads else None,
                    "ratio_to_ours_http": median(times) / ours["cold_1_client"]["median_ms"],
                    "ratio_to_ours_direct": median(times) / ours["direct_chdb"]["median_ms"],
                }
                progress.step(f"{peer.name} {name}")
        finally:
            peer.close()


def _growth_point(results: dict, project_dir: Path, scale: str, data: Path, profile: dict, progress) -> None:
    """One-client cold medians of every endpoint over `scale`'s data, on a server of its own."""
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
        project = project_with_fixtures(project_dir, Path(tmp), data)
        process = ServerProcess(project, Path(tmp) / "data", extra_args=MEASURING + _no_result_cache())
        server = process.start(timeout=3600)
        try:
            settle(server, profile["quiet_polls"])
            medians = {}
            for name, param_sets in MIX.items():
                caller = EndpointCaller(server, name)
                _warm_up(caller, param_sets, profile)
                medians[name] = median(time_each(caller, cold_sets(name, profile["growth_calls"]), 1, False))
        finally:
            process.stop()
    results["growth"]["scales"][scale] = {"rows": sum(_rows(data).values()), "medians_ms": medians}
    progress.step(f"growth point {scale}")


def growth_exponents(scales: dict) -> dict[str, float | None]:
    """For each endpoint, the least-squares slope of log(median) over log(rows) across the scales measured: 1 is
    linear in the rows, 0 is flat. None with fewer than two scales."""
    points = sorted(scales.values(), key=lambda s: s["rows"])
    out: dict[str, float | None] = {}
    for name in points[-1]["medians_ms"]:
        xs = [math.log(p["rows"]) for p in points if name in p["medians_ms"]]
        ys = [math.log(max(p["medians_ms"][name], 1e-3)) for p in points if name in p["medians_ms"]]
        if len(xs) < 2:
            out[name] = None
            continue
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        out[name] = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return out


def _ingest(project_dir: Path, data: Path, profile: dict) -> dict:
    """Single stream and the project's client against chDB with and without the views, `rounds` times in turn:
    each ratio pairs measurements taken moments apart; the median of the rounds is reported (one round's ratio
    moves by about 0.1 on a shared machine)."""
    with open(data / "api_logs.ndjson", "rb") as handle:
        lines = [line.rstrip(b"\n") for _, line in zip(range(profile["ingest_rows"]), handle, strict=False)]
    batches = ingest.bodies(lines)
    rounds = []
    for _ in range(profile["ingest_rounds"]):
        bare = ingest.chdb_bare_table(project_dir, "api_logs", batches)
        views = ingest.chdb_with_views(project_dir, "api_logs", batches)
        stream, client = _on_fresh_server(
            project_dir,
            lambda server: (
                ingest.single_stream(server, "api_logs", batches),
                ingest.project_client(server, "api_logs", lines),
            ),
        )
        rounds.append(
            {
                "chdb_bare_table": bare,
                "chdb_with_views": views,
                "single_stream": stream,
                "project_client": client,
                "single_stream_to_views": stream["rows_per_s"] / views["rows_per_s"],
                "single_stream_to_bare": stream["rows_per_s"] / bare["rows_per_s"],
                "client_to_views": client["rows_per_s"] / views["rows_per_s"],
                "client_to_bare": client["rows_per_s"] / bare["rows_per_s"],
            }
        )
    ratios = ("single_stream_to_views", "single_stream_to_bare", "client_to_views", "client_to_bare")
    middle = sorted(rounds, key=lambda r: r["single_stream_to_views"])[(len(rounds) - 1) // 2]
    return {
        "rows": len(lines),
        "batch_rows": ingest.BATCH_ROWS,
        **{k: middle[k] for k in ("chdb_bare_table", "chdb_with_views", "single_stream", "project_client")},
        **{k: median([r[k] for r in rounds]) for k in ratios},
        "rounds": [{k: r[k] for k in ratios} for r in rounds],
    }


def _on_fresh_server(project_dir: Path, measure: Callable[[Connection], tuple]) -> tuple:
    """`measure(server)` on a server of its own over the project's datafiles, every table empty."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        project = ingest.copy_datafiles(project_dir, Path(tmp) / "project")
        process = ServerProcess(project, Path(tmp) / "data")
        server = process.start(timeout=600)
        try:
            return measure(server)
        finally:
            process.stop()

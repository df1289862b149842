"""Repeated dashboard reads (issue 18): clients asking the same requests again, timed apart by how the result cache
answered them (`Server-Timing: cache;desc="hit"`, `"miss"` or `"bypass"`).

`measure(base_url, token, calls)` runs `clients` client processes, each asking every call once per round in its own
order over one keep-alive connection; all start a round together. Before every `invalidate_every`-th round the cache
is made stale (by default with `POST /v0/build`, a build that changes nothing but bumps the workspace's epoch, so no
row changes), so those rounds' first answers are misses and the others hits.
`python -m usage_analytics.bench.cache --host URL --token T` runs it on the endpoints' declared example values and
prints the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import requests

from .measure import PipeConnection, percentile


def summary(times: list[float]) -> dict[str, float]:
    if not times:
        return {"calls": 0}
    return {"calls": len(times), "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}


def example_calls(project_dir: Path) -> list[tuple[str, dict[str, str]]]:
    """Every endpoint of the project with its parameters' declared `example=` values (what `make run` prints)."""
    from ..local.pipes import declared_parameters
    from ..local.project import load_project

    project = load_project(project_dir)
    return [
        (name, {p.name: p.example for p in declared_parameters(pipe).values() if p.example is not None})
        for name, pipe in sorted(project.endpoints.items())
    ]


def rebuild(base_url: str, token: str) -> Callable[[], None]:
    """A build of the server's project folder: it changes nothing, and makes every kept answer stale."""

    def run() -> None:
        answer = requests.post(f"{base_url}/v0/build", headers={"Authorization": f"Bearer {token}"}, timeout=600)
        answer.raise_for_status()

    return run


def _client(
    base_url: str,
    token: str,
    calls: Sequence[tuple[str, dict[str, str]]],
    rounds: int,
    invalidate_every: int,
    seed: int,
    start: Barrier,
    end: Barrier,
    results: Queue,
) -> None:
    """One client process: a keep-alive connection, every call once per round in its own order."""
    connection, order, times = PipeConnection(base_url, token), random.Random(seed), []
    try:
        for n in range(rounds):
            start.wait()
            mine = list(calls)
            order.shuffle(mine)
            for name, params in mine:
                began = time.perf_counter()
                cache = connection.get(name, params).get("cache", "none")
                times.append((name, cache, (time.perf_counter() - began) * 1000, n % invalidate_every == 0))
            end.wait()
        results.put(times)
    except Exception as exc:  # one client failing must not leave the others waiting at a barrier
        results.put(f"{type(exc).__name__}: {exc}")
        start.abort()
        end.abort()


def measure(
    base_url: str,
    token: str,
    calls: Sequence[tuple[str, dict[str, str]]],
    clients: int = 8,
    rounds: int = 20,
    invalidate_every: int = 4,
    invalidate: Callable[[], None] | None = None,
) -> dict:
    """p50 and p95 (ms, as the client waits) of hits, misses and bypasses with `clients` clients repeating `calls`
    (endpoint name, parameters) for `rounds` rounds, the cache made stale before every `invalidate_every`-th round
    (the first included); `hit_steady` counts only the hits of the other rounds. Also per endpoint.

    Each client is a process of its own with one keep-alive connection, as each viewer of a dashboard is a browser
    of its own: threads of one Python process would queue on its interpreter lock and time each other."""
    base_url = base_url.rstrip("/")
    invalidate = invalidate or rebuild(base_url, token)
    context = multiprocessing.get_context("spawn")
    start, end, results = context.Barrier(clients + 1), context.Barrier(clients + 1), context.Queue()
    processes = [
        context.Process(
            target=_client,
            args=(base_url, token, list(calls), rounds, invalidate_every, i, start, end, results),
            daemon=True,
        )
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    try:
        for n in range(rounds):  # the coordinator makes the cache stale while no client is asking
            if n % invalidate_every == 0:
                invalidate()
            start.wait()
            end.wait()
    except threading.BrokenBarrierError:
        pass  # a client failed: its error is in the results
    outcomes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    failed = [o for o in outcomes if isinstance(o, str)]
    if failed:
        raise RuntimeError(f"a cache client failed: {failed[0]}")
    times = [t for outcome in outcomes for t in outcome]
    statuses = sorted({status for _, status, _, _ in times})
    return {
        "clients": clients,
        "rounds": rounds,
        "invalidate_every": invalidate_every,
        **{status: summary([ms for _, s, ms, _ in times if s == status]) for status in statuses},
        # the rounds between two invalidations: every client repeating what is kept, no query running meanwhile
        "hit_steady": summary([ms for _, s, ms, after in times if s == "hit" and not after]),
        "endpoints": {
            name: {status: summary([ms for n, s, ms, _ in times if n == name and s == status]) for status in statuses}
            for name, _ in calls
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="the server, e.g. http://127.0.0.1:7181")
    parser.add_argument("--token", required=True, help="a token that may read every endpoint (and build, by default)")
    parser.add_argument("--project-dir", type=Path, default=Path("."), help="whose endpoints' examples to ask")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--invalidate-every", type=int, default=4)
    args = parser.parse_args(argv)
    calls = example_calls(args.project_dir)
    result = measure(args.host, args.token, calls, args.clients, args.rounds, args.invalidate_every)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Repeated dashboard reads (issue 18): clients asking the same requests again, timed apart by how the result cache
answered them (`Server-Timing: cache;desc="hit"`, `"miss"` or `"bypass"`).

`measure(base_url, token, calls)` runs `clients` threads, each asking every call once per round in its own order; all
start a round together. Before every `invalidate_every`-th round the cache is made stale (by default with
`POST /v0/build`, a build that changes nothing but bumps the workspace's epoch, so no row changes), so those rounds'
first answers are misses and the others hits. `python -m usage_analytics.bench.cache --host URL --token T` runs it on
the endpoints' declared example values and prints the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import requests

from .measure import percentile

_CACHE = re.compile(r'cache;desc="(\w+)"')


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
    (the first included); `hit_steady` counts only the hits of the other rounds. Also per endpoint."""
    base_url = base_url.rstrip("/")
    invalidate = invalidate or rebuild(base_url, token)
    round_number = [0]

    def next_round() -> None:  # run by the last client to arrive, before any starts the round
        if round_number[0] % invalidate_every == 0:
            invalidate()
        round_number[0] += 1

    barrier = threading.Barrier(clients, action=next_round)
    times: list[tuple[str, str, float, bool]] = []  # (endpoint, cache status, ms, in a round after invalidation)
    lock, failures = threading.Lock(), []

    def client(seed: int) -> None:
        http, order = requests.Session(), random.Random(seed)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            for n in range(rounds):
                barrier.wait()
                mine = list(calls)
                order.shuffle(mine)
                for name, params in mine:
                    started = time.perf_counter()
                    answer = http.get(f"{base_url}/v0/pipes/{name}.json", params=params, headers=headers)
                    ms = (time.perf_counter() - started) * 1000
                    answer.raise_for_status()
                    found = _CACHE.search(answer.headers.get("Server-Timing", ""))
                    with lock:
                        times.append((name, found.group(1) if found else "none", ms, n % invalidate_every == 0))
        except Exception as exc:  # one client failing must not leave the others waiting at the barrier
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise next((f for f in failures if not isinstance(f, threading.BrokenBarrierError)), failures[0])
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

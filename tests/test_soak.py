"""Load: 8 writers (good and dirty rows) and 16 readers (valid and invalid parameters) at once.

Bounded in time and requests, loopback only. Zero 5xx; every good row counted; every bad row
quarantined; the server's memory stays flat after warm-up. Both variants are harnesses (`-m slow`):
`pytest -m slow -s tests/test_soak.py` runs the short and the 60-second one and prints their figures.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from conftest import ROOT, ServerProcess, event

from usage_analytics.bench import MIX

pytestmark = pytest.mark.embedded
WRITERS, READERS = 8, 16
INVALID = {"limit": "0", "start_date": "yesterday", "granularity": "fortnight", "days": "many", "at": "noon"}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sample_rss(pid: int, until: float, samples: list[int]) -> None:
    """Every 5 s until `until`, and never past it (a plain sleep(5) kept the run waiting up to 5 s longer)."""
    while (left := until - time.monotonic()) > 0:
        samples.append(rss_kb(pid))
        time.sleep(min(5, left))


class Soak:
    def __init__(self, target, seconds: float):
        self.target, self.deadline = target, time.monotonic() + seconds
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.good_sent = self.bad_sent = self.acknowledged = self.quarantined = 0
        self.read_ms: list[float] = []

    def write(self, seed: int) -> None:
        rng, http, batch = random.Random(seed), requests.Session(), 0
        while time.monotonic() < self.deadline:
            rows, bad = [], 0
            for i in range(200):
                if rng.random() < 0.05:
                    rows.append(json.dumps(event(event_id=f"bad-{seed}-{batch}-{i}", timestamp="never")))
                    bad += 1
                else:
                    rows.append(json.dumps(event(event_id=f"w{seed}-{batch}-{i}", user_id=f"soak_{i % 50}")))
            response = http.post(
                self.target.url("/v0/events"),
                params={"name": "events", "wait": "true"},
                data="\n".join(rows),
                headers=self.target.auth(),
                timeout=60,
            )
            with self.lock:
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.good_sent += len(rows) - bad
                    self.bad_sent += bad
                    self.acknowledged += response.json()["successful_rows"]
                    self.quarantined += response.json()["quarantined_rows"]
            batch += 1

    def read(self, seed: int) -> None:
        rng, http = random.Random(seed), requests.Session()
        endpoints = sorted(MIX)
        while time.monotonic() < self.deadline:
            name = rng.choice(endpoints)
            params = dict(rng.choice(MIX[name]))
            if rng.random() < 0.2:
                key = rng.choice(sorted(INVALID))
                params[key] = INVALID[key]
            started = time.perf_counter()
            response = http.get(
                self.target.url(f"/v0/pipes/{name}.json"), params=params, headers=self.target.auth(), timeout=60
            )
            with self.lock:
                self.read_ms.append((time.perf_counter() - started) * 1000)
                self.statuses[response.status_code] += 1

    def run(self) -> None:
        threads = [threading.Thread(target=self.write, args=(i,)) for i in range(WRITERS)]
        threads += [threading.Thread(target=self.read, args=(100 + i,)) for i in range(READERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def soak(tmp_path, seconds: float, warm_up: float = 3) -> dict:
    server = ServerProcess(ROOT, tmp_path / "data")
    target = server.start()
    try:
        Soak(target, warm_up).run()  # caches, sessions, thread pools
        before = target.sql("SELECT count() AS n FROM events")[0]["n"]
        quarantined_before = target.sql("SELECT count() AS n FROM events_quarantine")[0]["n"]
        rss_start = rss_kb(server.proc.pid)
        load = Soak(target, seconds)
        samples: list[int] = []
        sampler = threading.Thread(target=sample_rss, args=(server.proc.pid, load.deadline, samples), daemon=True)
        sampler.start()
        load.run()
        sampler.join()
        rss_end = rss_kb(server.proc.pid)
        stored = target.sql("SELECT count() AS n FROM events")[0]["n"] - before
        quarantined = target.sql("SELECT count() AS n FROM events_quarantine")[0]["n"] - quarantined_before
    finally:
        server.stop()
    ordered = sorted(load.read_ms)
    figures = {
        "seconds": seconds,
        "requests": sum(load.statuses.values()),
        "statuses": dict(load.statuses),
        "good_rows_sent": load.good_sent,
        "bad_rows_sent": load.bad_sent,
        "read_p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1) if ordered else None,
        "rss_start_mb": rss_start // 1024,
        "rss_end_mb": rss_end // 1024,
        "rss_mb_every_5s": [kb // 1024 for kb in samples],
    }
    print(f"\nsoak: {figures}")
    assert not [code for code in load.statuses if code >= 500], figures
    assert load.acknowledged == load.good_sent and load.quarantined == load.bad_sent, figures
    assert (stored, quarantined) == (load.good_sent, load.bad_sent), figures
    assert rss_end < rss_start * 1.5 + 200 * 1024, figures
    return figures


@pytest.mark.slow
def test_short_soak(tmp_path):
    """Every property of the long soaks but the memory's levelling off, in a few seconds (a harness: `make test`'s
    120 s leave it to `make test-slow`, with the long one)."""
    soak(tmp_path, seconds=4, warm_up=1)


@pytest.mark.slow
def test_sixty_second_soak(tmp_path):
    soak(tmp_path, seconds=60)


@pytest.mark.slow
def test_five_minute_soak_memory_levels_off(tmp_path):
    """Memory may grow while ClickHouse's caches fill; over five minutes the last minute must be flat."""
    figures = soak(tmp_path, seconds=300)
    last_minute = figures["rss_mb_every_5s"][-12:]
    assert max(last_minute) - min(last_minute) < 0.1 * max(last_minute), figures

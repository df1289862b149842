"""Timing and memory helpers: percentiles of call times, one caller per endpoint, the server's RSS."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from ..local.launcher import Connection


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], point: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(point / 100 * (len(ordered) - 1)))]


def stats(times: list[float]) -> dict[str, float]:
    return {
        "median_ms": median(times),
        "p95_ms": percentile(times, 95),
        "p99_ms": percentile(times, 99),
        "calls": len(times),
    }


def time_each(call: Callable[[object], object], inputs: list, rounds: int, warm_up: bool = True) -> list[float]:
    """Milliseconds of `call(x)` for each input, `rounds` passes over the inputs (after one warm-up pass)."""
    if warm_up:
        for x in inputs:
            call(x)
    times = []
    for _ in range(rounds):
        for x in inputs:
            started = time.perf_counter()
            call(x)
            times.append((time.perf_counter() - started) * 1000)
    return times


def time_concurrently(make_call: Callable[[int], Callable], inputs_of: Callable[[int], list], clients: int) -> list:
    """Milliseconds of each call with `clients` callers at once, client i calling `make_call(i)` on
    `inputs_of(i)` once each (no warm-up: the caller decides what is warm)."""

    def one_client(i: int) -> list[float]:
        return time_each(make_call(i), inputs_of(i), 1, warm_up=False)

    with ThreadPoolExecutor(clients) as pool:
        return [ms for times in pool.map(one_client, range(clients)) for ms in times]


def server_timing(header: str) -> dict[str, str]:
    """`Server-Timing: render;dur=0.1, engine;dur=2.3, cache;desc="hit"` as {"render": "0.1", ..., "cache": "hit"}."""
    out = {}
    for part in header.split(","):
        name, *attributes = (piece.strip() for piece in part.split(";"))
        for attribute in attributes:
            key, _, value = attribute.partition("=")
            if key in ("dur", "desc"):
                out[name] = value.strip('"')
    return out


class PipeConnection:
    """One keep-alive connection to a server's endpoints (a bare `http.client` one: python-requests spends about 2 ms
    of the client's own CPU per call, which would be counted as the server's)."""

    def __init__(self, base_url: str, token: str, timeout: float = 600):
        self.address, self.timeout = urlsplit(base_url), timeout
        self.headers = {"Authorization": f"Bearer {token}"}
        self.connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.address.hostname, self.address.port, timeout=self.timeout)

    def get(self, name: str, params: dict) -> dict[str, str]:
        """GET `/v0/pipes/<name>.json` with `params`; its Server-Timing (`server_timing`). An error answer raises."""
        url = f"/v0/pipes/{name}.json?{urlencode(params)}"
        try:
            self.connection.request("GET", url, headers=self.headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):  # the server closed an idle connection
            self.connection.close()
            self.connection = self._connect()
            self.connection.request("GET", url, headers=self.headers)
            response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}: {body[:300]!r}")
        return server_timing(response.getheader("Server-Timing") or "")


class EndpointCaller:
    """Calls one endpoint over its own connection, and keeps each answer's Server-Timing: the `engine` time
    (the client's time minus it is what the server itself cost on that call) and the result cache's verdict."""

    def __init__(self, server: Connection, name: str):
        self.name = name
        self.connection = PipeConnection(server.base_url, server.token, timeout=300)
        self.engine_ms: list[float] = []
        self.cache: list[str] = []

    def __call__(self, params: dict) -> None:
        timing = self.connection.get(self.name, params)
        self.engine_ms.append(float(timing.get("engine", "nan")))
        self.cache.append(timing.get("cache", "none"))


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` and its children (Linux /proc)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
        pids += [int(c) for c in children]
    return total


class PeakRss:
    """Samples a process's RSS every `interval` seconds while the `with` block runs; `peak` is the largest."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))

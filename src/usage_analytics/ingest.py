"""A client for Tinybird's Events API that never silently drops a batch.

Rows are sent in batches bounded by rows and by bytes (under the 10 MB request limit), gzipped, over a
pooled session whose urllib3 Retry retries 429 and 5xx answers with backoff, honours Retry-After and
applies to POST. Delivery is at-least-once: a batch whose answer was lost in transit is sent again, so
a retry can duplicate rows; every event source carries an id column (event_id, request_id) to detect
them. A batch that still fails is written to a file that `usage-analytics ingest` can send again.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from isal import igzip
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

MAX_REQUEST_BYTES = 10 * 1024 * 1024


@dataclass
class Totals:
    read: int = 0
    sent: int = 0
    acknowledged: int = 0
    quarantined: int = 0
    failed: int = 0
    batches: int = 0
    bytes: int = 0
    failed_file: str | None = None
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"rows read {self.read}, sent {self.sent}, acknowledged {self.acknowledged}, "
            f"quarantined {self.quarantined}, failed {self.failed} ({self.batches} batches)"
        )
        return text + (f"; failed rows written to {self.failed_file}" if self.failed_file else "")


def session(retries: int = 5, backoff: float = 0.5, pool: int = 8) -> requests.Session:
    retry = Retry(
        total=retries,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,  # POST too: the Events API is what we retry
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    http = requests.Session()
    http.mount("http://", HTTPAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool))
    http.mount("https://", HTTPAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool))
    return http


def batches(lines: Iterable[bytes], max_rows: int, max_bytes: int) -> Iterator[list[bytes]]:
    """Consecutive lines, at most `max_rows` and `max_bytes` (newlines included) a batch."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        if len(line) + 1 > max_bytes:
            raise ValueError(f"a row of {len(line)} bytes exceeds the {max_bytes}-byte request limit")
        if batch and (len(batch) >= max_rows or size + len(line) + 1 > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += len(line) + 1
    if batch:
        yield batch


class Progress:
    """One self-rewriting line on a terminal; silent otherwise."""

    def __init__(self, totals: Totals, stream=sys.stderr):
        self.totals, self.stream = totals, stream
        self.enabled = stream.isatty()
        self.started = time.perf_counter()

    def update(self) -> None:
        if self.enabled:
            seconds = max(time.perf_counter() - self.started, 1e-6)
            t = self.totals
            self.stream.write(
                f"\r{t.acknowledged:,} rows acknowledged, {t.acknowledged / seconds:,.0f} rows/s, "
                f"{t.bytes / seconds / 1e6:.1f} MB/s, {t.failed:,} failed"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


class EventsClient:
    def __init__(
        self,
        host: str,
        token: str,
        *,
        max_rows: int = 50_000,
        max_bytes: int = 8 * 1024 * 1024,
        concurrency: int = 2,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 120,
    ):
        if max_bytes > MAX_REQUEST_BYTES:
            raise ValueError("max_bytes must stay under the Events API's 10 MB request limit")
        self.host, self.token = host.rstrip("/"), token
        self.max_rows, self.max_bytes, self.concurrency, self.timeout = max_rows, max_bytes, concurrency, timeout
        self.http = session(retries, backoff, pool=max(concurrency, 2))

    def _post(self, datasource: str, batch: list[bytes]) -> dict:
        body = igzip.compress(b"\n".join(batch), compresslevel=1)
        response = self.http.post(
            f"{self.host}/v0/events",
            params={"name": datasource, "wait": "true"},
            data=body,
            headers={"Authorization": f"Bearer {self.token}", "Content-Encoding": "gzip"},
            timeout=self.timeout,
        )
        if response.status_code not in (200, 202):
            raise requests.HTTPError(f"HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    def send(self, datasource: str, lines: Iterable[bytes], failed_path: Path | None = None) -> Totals:
        """Send every line; rows of batches that fail after all retries go to `failed_path`."""
        totals = Totals()
        lock = threading.Lock()
        progress = Progress(totals)
        failed_file = None

        def deliver(batch: list[bytes]) -> None:
            nonlocal failed_file
            try:
                answer = self._post(datasource, batch)
            except (requests.RequestException, ValueError) as exc:
                with lock:
                    totals.failed += len(batch)
                    totals.errors.append(str(exc)[:300])
                    if failed_path is not None:
                        failed_file = failed_file or open(failed_path, "wb")  # noqa: SIM115 - closed below
                        failed_file.write(b"\n".join(batch) + b"\n")
                return
            with lock:
                totals.acknowledged += answer.get("successful_rows", 0)
                totals.quarantined += answer.get("quarantined_rows", 0)
                totals.bytes += sum(len(line) + 1 for line in batch)
                progress.update()

        # at most `concurrency` batches in flight, and as many waiting: memory stays bounded
        slots = threading.BoundedSemaphore(self.concurrency * 2)
        with ThreadPoolExecutor(self.concurrency) as pool:
            for batch in batches(lines, self.max_rows, self.max_bytes):
                totals.read += len(batch)
                totals.sent += len(batch)
                totals.batches += 1
                slots.acquire()
                pool.submit(deliver, batch).add_done_callback(lambda _: slots.release())
        progress.close()
        if failed_file is not None:
            failed_file.close()
            totals.failed_file = str(failed_path)
        return totals


def read_lines(source: str) -> Iterator[bytes]:
    """Lines of a file (gzip by suffix) or of standard input for '-'."""
    if source == "-":
        yield from sys.stdin.buffer
        return
    opener = gzip.open if source.endswith(".gz") else open
    with opener(source, "rb") as handle:
        yield from handle

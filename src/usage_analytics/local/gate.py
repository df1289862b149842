"""One datasource's writers: appends share it, a replace or delete has it alone, and too many appends at once are
told to come back later (the Events API's backpressure)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import TooManyRequests


class DatasourceGate:
    """Who may write to one datasource now: appends share it, a replace or delete has it alone.

    It is also the Events API's backpressure: when more than `max_pending` appends are running or waiting
    (ingestion has fallen behind, or a replace holds the datasource), the next one gets a 429 with
    Retry-After and X-RateLimit-* headers instead of queueing without bound.
    """

    def __init__(self, name: str, max_pending: int):
        self.name, self.max_pending = name, max_pending
        self._cond = threading.Condition()
        self._pending = self._appending = 0
        self._exclusive = False

    def headers(self, remaining: int) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.max_pending),
            "X-RateLimit-Remaining": str(max(remaining, 0)),
            "X-RateLimit-Reset": str(int(time.time()) + 1),  # epoch seconds, as Tinybird's clients read it
        }

    @contextmanager
    def append(self) -> Iterator[dict[str, str]]:
        with self._cond:
            if self._pending >= self.max_pending:
                raise TooManyRequests(
                    f"Ingestion into '{self.name}' is behind ({self._pending} requests in progress): retry later",
                    headers={"Retry-After": "1", **self.headers(0)},
                )
            self._pending += 1
            headers = self.headers(self.max_pending - self._pending)
            self._cond.wait_for(lambda: not self._exclusive)
            self._appending += 1
        try:
            yield headers
        finally:
            with self._cond:
                self._appending -= 1
                self._pending -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True  # new appends wait from here on
            self._cond.wait_for(lambda: self._appending == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()

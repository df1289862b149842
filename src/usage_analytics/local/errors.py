"""Errors that carry their HTTP status, raised anywhere a request is refused and shaped into `{"error": ...}` once."""

from __future__ import annotations


class RequestError(Exception):
    """A request Tinybird would refuse: HTTP status and a one-line message for `{"error": ...}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> RequestError:
    return RequestError(400, message)

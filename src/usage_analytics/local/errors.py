"""Errors that carry their HTTP status, raised anywhere a request is refused and shaped into `{"error": ...}` once.

The domain (workspace, ingest, formats, auth) raises these or its own errors; `http/` turns every one of them
into Tinybird's body in one place (`response`), so no module builds an error response of its own.
"""

from __future__ import annotations


class RequestError(Exception):
    """A request Tinybird would refuse: HTTP status and a one-line message for `{"error": ...}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class _Status(RequestError):
    status = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None):
        super().__init__(type(self).status, message, headers)


class BadRequest(_Status):
    status = 400


class Forbidden(_Status):
    status = 403


class NotFound(_Status):
    status = 404


class RequestTimeout(_Status):
    status = 408  # a query over its time (TIMEOUT_EXCEEDED)


class Conflict(_Status):
    status = 409


class PayloadTooLarge(_Status):
    status = 413


class UnsupportedMediaType(_Status):
    status = 415


class TooManyRequests(_Status):
    status = 429


class InternalError(_Status):
    status = 500


class ServiceUnavailable(_Status):
    status = 503


class InsufficientStorage(_Status):
    status = 507


def bad_request(message: str) -> RequestError:
    return BadRequest(message)


def engine_failure(message: str, code: str) -> RequestError:
    """The engine failed on a well-formed write: not the caller's fault, so a 5xx a client may retry. A full
    disk is 507 (ClickHouse's NOT_ENOUGH_SPACE, or the OS's ENOSPC in its message), anything else 500."""
    full = code == "NOT_ENOUGH_SPACE" or "No space left" in message
    return (InsufficientStorage if full else InternalError)(f"The request failed and stored nothing: {message}")

"""Browsers may call the API from any page, as they may call Tinybird's: CORS on the Events API, pipes, SQL and the
rest of `/v0` and `/v1`, preflight included.

Every route authenticates with a token the caller sends (a header or `?token=`), never with a cookie, so answering
any origin gives a page nothing it did not already hold. The one exception is Tinybird Local's `GET /tokens`, which
hands out the admin token to whoever connects: it gets no CORS headers (a page on another origin cannot read it) and
answers only requests addressed to a loopback name (a page that rebinds its own host name to 127.0.0.1 is
same-origin, but its requests still say `Host: evil.example`).
"""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_API = ("/v0/", "/v1/")
_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
# what a page may send: the token header and the body's type and compression
_ALLOWED_HEADERS = "Authorization, Content-Type, Content-Encoding"
# what a page may read beyond the safelisted response headers
_EXPOSED_HEADERS = "Server-Timing, Retry-After, Content-Encoding, X-Request-Id"
_MAX_AGE = "86400"


def is_api(path: str) -> bool:
    return path.startswith(_API)


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine's loopback (`localhost`, `127.0.0.1`, `::1`); any other name
    may resolve to anything."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_host(host_header: str) -> bool:
    """Whether a request's `Host` names this machine by a loopback name (`localhost`, `127.0.0.1:7181`, `[::1]`)."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:7181
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.endswith(".localhost") or is_loopback(host)


class Cors:
    """Answers preflights on the API itself (before routing, so every route's OPTIONS is a 204) and adds
    `Access-Control-Allow-Origin: *` to every API answer, errors included, so a page can read Tinybird's
    `{"error": ...}` bodies and status codes (a 403 for a bad token, a 429 with Retry-After)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"access-control-allow-origin", b"*"),
                    (b"access-control-expose-headers", _EXPOSED_HEADERS.encode()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    async def _preflight(send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", b"*"),
                    (b"access-control-allow-methods", _METHODS.encode()),
                    (b"access-control-allow-headers", _ALLOWED_HEADERS.encode()),
                    (b"access-control-max-age", _MAX_AGE.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

"""Bounds checked before any route runs: the request head (431) and the URL (414), with Tinybird's JSON error."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..bodies import size_text
from ..settings import ServerSettings


class RequestLimits:
    """Refuses a request whose headers add up to more than `max_header_bytes` (a JWT padded to a megabyte) with a
    431, and one whose path and query string pass `max_url_bytes` with a 414 (long parameters belong in a POST
    body). uvicorn is started with a head buffer larger than the header bound, so such requests reach here."""

    def __init__(self, app: ASGIApp, settings: ServerSettings):
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self._refusal(scope)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        headers = sum(len(name) + len(value) for name, value in scope.get("headers", ()))
        if headers > self.settings.max_header_bytes:
            limit = self.settings.max_header_bytes
            message = f"Request headers of {headers} bytes exceed the server's limit of {limit} bytes"
            return JSONResponse({"error": message}, status_code=431)
        url = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if url > self.settings.max_url_bytes:
            limit = size_text(self.settings.max_url_bytes)
            message = f"The URL is {url} bytes, over the {limit} limit: send long parameters in a POST body"
            return JSONResponse({"error": message}, status_code=414)
        return None

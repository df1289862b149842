"""Starts a Workspace behind uvicorn: build the project, print where it answers, serve until stopped."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .copies import CopyScheduler
from .http import build_app
from .http.cors import is_loopback
from .settings import DEFAULTS, MiB, ServerSettings
from .workspace import Workspace
from .workspaces import Registry

_REQUEST_HEAD_BUFFER = 2 * MiB  # a long URL (GET parameters) is answered; a longer head is refused


class _BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (llhttp, in C: about twice h11's speed per request), with the request head
    bounded as h11's `max_incomplete_event_size` bounds it: httptools itself keeps a URL or header of any length,
    so the bytes received while a head is incomplete are counted, and past the bound the request gets a 431 and the
    connection closes."""

    _head_bytes = 0
    _in_head = True
    _refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > _REQUEST_HEAD_BUFFER:
                self._refused = True
                error = f"Request head too large: at most {_REQUEST_HEAD_BUFFER // MiB} MiB of URL and headers"
                body = json.dumps({"error": error}).encode()
                head = (
                    "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
                )
                self.transport.write(head.encode() + body)
                # closing now, with the rest of the head unread, would reset the connection and could lose the
                # answer: the rest is read and dropped until the client closes, for a few seconds at most
                self.transport.write_eof()
                asyncio.get_running_loop().call_later(5, self.transport.close)
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0  # the next request on this connection


class _AnnouncingServer(uvicorn.Server):
    """Says it is ready only once the socket listens, so whoever reads the line can call at once."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None]):
        super().__init__(config)
        self._on_listening = on_listening

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises SIGTERM/SIGINT after a graceful shutdown, which would kill the process before
        # the workspace closes; the shutdown is complete, so exit normally instead
        self._captured_signals.clear()

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_listening()


def example_calls(workspace: Workspace, base: str) -> list[str]:
    """A working curl line per endpoint: its declared `example=` values, and a token that may read it."""
    calls = []
    for name in sorted(workspace.project.endpoints):
        readers = [t for t in workspace.tokens.all() if not t.admin and t.allows("PIPES:READ", name)]
        token = readers[0].token if readers else workspace.tokens.admin_token
        params = {p.name: p.example for p in workspace.endpoint(name).parameters.values() if p.example is not None}
        query = urlencode({**params, "token": token})
        calls.append(f"curl '{base}/v0/pipes/{name}.json?{query}'")
    return calls


def reader_token(workspace: Workspace) -> str:
    """The token a read-only page should use: the one that may read the most endpoints without being admin."""
    names = sorted(workspace.project.endpoints)
    readers = [t for t in workspace.tokens.all() if not t.admin]
    best = max(readers, key=lambda t: sum(t.allows("PIPES:READ", n) for n in names), default=None)
    if best is None or not any(best.allows("PIPES:READ", n) for n in names):
        return workspace.tokens.admin_token
    return best.token


def serve(
    project_dir: Path,
    data_dir: Path,
    host: str,
    port: int,
    echo: Callable[[str], None] = print,
    settings: ServerSettings = DEFAULTS,
    static: dict[str, Path] | None = None,
) -> None:
    """Build the project into the data dir and serve it; `static` maps URL prefixes to folders served as files (the
    CLI serves the project's `dashboard/` at `/dashboard`)."""
    started = time.perf_counter()
    if settings.expose_tokens is None and not is_loopback(host):
        # GET /tokens gives the admin token to whoever connects: by default only on loopback (None), and there only
        # to requests addressed to a loopback name (http/admin.py)
        settings = replace(settings, expose_tokens=False)
    with Workspace(project_dir, data_dir, settings) as workspace:
        # like Tinybird Local, the project's .env and .env.local become the workspace's secrets
        workspace.secrets.load_env(workspace.project_dir)
        for line in workspace.build().lines:
            echo(f"  {line}")
        registry = Registry(workspace)  # and the workspaces `tb --local` created, rebuilt from their datafiles
        base = f"http://{host}:{port}"

        def announce() -> None:
            echo(f"Tinybird-compatible server ready at {base} in {time.perf_counter() - started:.2f}s")
            echo(f"  admin token: {workspace.tokens.admin_token}")
            for line in example_calls(workspace, base):
                echo(f"  {line}")
            if static and "/dashboard" in static:
                echo(f"  dashboard: {base}/dashboard/#token={reader_token(workspace)}")

        config = uvicorn.Config(
            build_app(registry, static),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            http=_BoundedHeadProtocol,
            ws="none",  # no WebSocket route: its protocol libraries (a fifth of a second to import) stay unloaded
        )
        with CopyScheduler(registry):  # scheduled copy pipes run while the server does, and stop with it
            _AnnouncingServer(config, announce).run()

"""Starts a Workspace behind uvicorn: build the project, print where it answers, serve until stopped."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

import uvicorn

from .copies import CopyScheduler
from .http import build_app
from .settings import DEFAULTS, MiB, ServerSettings
from .workspace import Workspace
from .workspaces import Registry

_REQUEST_HEAD_BUFFER = 2 * MiB  # h11's default of 16 KB would drop a longer head without a JSON answer


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


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to anything
        return False


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


def serve(
    project_dir: Path,
    data_dir: Path,
    host: str,
    port: int,
    echo: Callable[[str], None] = print,
    settings: ServerSettings = DEFAULTS,
) -> None:
    started = time.perf_counter()
    if settings.expose_tokens is None:  # GET /tokens answers anyone who can connect: by default only on loopback
        settings = replace(settings, expose_tokens=_is_loopback(host))
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

        config = uvicorn.Config(
            build_app(registry),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            h11_max_incomplete_event_size=_REQUEST_HEAD_BUFFER,
        )
        with CopyScheduler(registry):  # scheduled copy pipes run while the server does, and stop with it
            _AnnouncingServer(config, announce).run()

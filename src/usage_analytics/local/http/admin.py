"""Health, version, tokens, the workspace and its build: the routes that are about the server rather than the data."""

from __future__ import annotations

from importlib.metadata import version as package_version

import chdb
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..errors import Forbidden
from .common import admin, workspace
from .cors import loopback_host


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def version(request: Request) -> Response:
    """Tinybird Local's `GET /version`, as text: `tb local version` prints it."""
    return PlainTextResponse(f"usage-analytics {package_version('usage-analytics')} (chDB {chdb.__version__})")


async def local_tokens(request: Request) -> Response:
    """Tinybird Local's `GET /tokens`: the admin tokens, to anyone who connects, so only on loopback by default."""
    if workspace(request).settings.expose_tokens is False:
        raise Forbidden(
            "GET /tokens is off: the server listens beyond loopback, and this route gives anyone the admin "
            "token; start it with --expose-tokens to allow it",
        )
    if workspace(request).settings.expose_tokens is None and not loopback_host(request.headers.get("host", "")):
        # on loopback, a request must also be addressed to a loopback name: a web page whose host name was made to
        # resolve to 127.0.0.1 (DNS rebinding) reaches this server as its own origin, but says `Host: its.name`
        raise Forbidden("GET /tokens answers only requests addressed to localhost (a loopback name in Host)")
    return JSONResponse(workspace(request).tokens.local_tokens())


async def list_tokens(request: Request) -> Response:
    admin(request)
    return JSONResponse({"tokens": [t.as_json() for t in workspace(request).tokens.all()]})


async def workspace_info(request: Request) -> Response:
    admin(request)
    ws = workspace(request)
    return JSONResponse({"id": ws.tokens.workspace_id, "name": ws.project_dir.name})


async def build(request: Request) -> Response:
    admin(request)
    ws = workspace(request)
    ws.secrets.load_env(ws.project_dir)  # .env and .env.local are the project's secrets, as in Tinybird Local
    ws.secrets_changed()
    report = await run_in_threadpool(ws.build)
    return JSONResponse({"result": "success", "changes": report.lines})

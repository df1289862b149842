"""Tinybird's HTTP API over a Workspace: same routes, JSON shapes, status codes and error bodies.

One module per API, each with module-level handlers that read the server's state from `request.app.state`; one
route table here; every error shaped into `{"error": ...}` by the exception handlers below, and nowhere else.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..build import BuildError
from ..engine import EngineError
from ..errors import RequestError, engine_failure
from ..project import ProjectError
from ..workspace import Workspace
from ..workspaces import Registry
from . import admin, build, copies, datasources, deploy, events, pipes, sql, variables, workspaces
from .cors import Cors
from .limits import RequestLimits

_log = logging.getLogger("usage_analytics.local")

ROUTES = [
    Route("/v1/user/workspaces", workspaces.list_workspaces),
    Route("/v1/user/workspaces/", workspaces.list_workspaces),
    Route("/v1/workspaces", workspaces.create, methods=["POST"]),
    Route("/v1/workspaces/{id}", workspaces.delete, methods=["DELETE"]),
    Route("/v0/variables", variables.list_secrets),
    Route("/v0/variables", variables.create, methods=["POST"]),
    Route("/v0/variables/{name}", variables.read),
    Route("/v0/variables/{name}", variables.update, methods=["PUT"]),
    Route("/v0/variables/{name}", variables.delete, methods=["DELETE"]),
    Route("/v0/health", admin.health),
    Route("/version", admin.version),
    Route("/tokens", admin.local_tokens),
    Route("/v0/tokens", admin.list_tokens),
    Route("/v0/workspace", admin.workspace_info),
    Route("/v0/build", admin.build, methods=["POST"]),
    Route("/v1/build", build.build, methods=["POST"]),
    Route("/v1/deploy", deploy.deploy, methods=["POST"]),
    Route("/v1/deployments", deploy.list_deployments),
    Route("/v1/deployments/{id}", deploy.get),
    Route("/v1/deployments/{id}", deploy.delete, methods=["DELETE"]),
    Route("/v1/deployments/{id}/set-live", deploy.set_live, methods=["POST"]),
    Route("/v0/events", events.append, methods=["POST"]),
    Route("/v0/pipes", pipes.list_pipes),
    Route("/v0/pipes/openapi.json", pipes.openapi),
    Route("/v0/pipes/{name}/openapi.json", pipes.openapi),
    Route("/v0/pipes/{name}/explain", pipes.explain),
    Route("/v0/pipes/{name}/copy", copies.run, methods=["POST"]),
    Route("/v0/pipes/{name}.{fmt}", pipes.data, methods=["GET", "POST"]),
    Route("/v0/pipes/{name}", pipes.describe),
    Route("/examples/query.http", pipes.example_url),
    Route("/v0/sql", sql.query, methods=["GET", "POST"]),
    Route("/v0/datasources", datasources.list_datasources),
    Route("/v0/datasources", datasources.import_data, methods=["POST"]),
    Route("/v0/datasources/{name}", datasources.info),
    Route("/v0/datasources/{name}/truncate", datasources.truncate, methods=["POST"]),
    Route("/v0/datasources/{name}/delete", datasources.delete, methods=["POST"]),
    Route("/v1/datasources/{name}/append", datasources.append_v1, methods=["POST"]),
    Route("/v1/datasources/{name}/replace", datasources.replace_v1, methods=["POST"]),
    Route("/v0/jobs", datasources.list_jobs),
    Route("/v0/jobs/{id}", datasources.job),
]


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _refused(request: Request, exc: RequestError) -> Response:
    return error(exc.status, exc.message, exc.headers)


async def _invalid_project(request: Request, exc: Exception) -> Response:
    return error(400, str(exc))


async def _build_failed(request: Request, exc: BuildError) -> Response:
    """A refused build, as `tb build` reads it: `result: failed` and each problem with its datafile."""
    errors = [{"filename": p.filename, "error": p.error} for p in exc.problems]
    return JSONResponse({"result": "failed", "error": str(exc), "errors": errors}, status_code=400)


async def _engine_failed(request: Request, exc: EngineError) -> Response:
    return await _refused(request, engine_failure(str(exc), exc.code))


async def _http(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        return error(404, f"Not found: {request.url.path}")
    if exc.status_code == 405:
        return error(405, f"Method {request.method} not allowed on {request.url.path}")
    return error(exc.status_code, exc.detail)


async def _internal(request: Request, exc: Exception) -> Response:
    # a bug: the caller gets its name only, the server's log gets the traceback
    _log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error(500, f"Internal error: {type(exc).__name__}")


class _StaticFiles(StaticFiles):
    """A folder of static files (the dashboard), with a policy that lets its pages run their own scripts only, and
    call any API host (the same page works against Tinybird Local and Cloud)."""

    POLICY = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src *; base-uri 'none'; form-action 'self'"
    )

    async def get_response(self, path: str, scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = self.POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def build_app(workspaces: Registry | Workspace, static: dict[str, Path] | None = None) -> Starlette:
    """The API over the server's workspaces (or over one workspace alone); `static` maps URL prefixes (`/dashboard`)
    to folders served as they are."""
    registry = workspaces if isinstance(workspaces, Registry) else Registry(workspaces)
    mounts = [Mount(prefix, app=_StaticFiles(directory=folder, html=True)) for prefix, folder in (static or {}).items()]
    app = Starlette(
        routes=[*ROUTES, *mounts],
        middleware=[Middleware(Cors), Middleware(RequestLimits, settings=registry.first.settings)],
        exception_handlers={
            RequestError: _refused,
            ProjectError: _invalid_project,
            BuildError: _build_failed,
            EngineError: _engine_failed,
            HTTPException: _http,
            Exception: _internal,
        },
    )
    app.state.registry = registry
    app.state.deployments = {}  # by workspace id, opened on first use (http/deploy.py)
    return app

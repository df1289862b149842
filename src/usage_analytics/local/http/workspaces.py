"""The workspaces of the server, as `tb --local` lists, creates and hard-deletes them (`/v1/user/workspaces`).

The CLI asks with the tokens of `GET /tokens` (the server's first workspace's admin tokens): the admin token to
list, the user token to create and delete; then it works inside a workspace with that workspace's token.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..workspace import Workspace
from .common import registry, token_value


def _manager(request: Request) -> None:
    """Only the server's own admin tokens (those `GET /tokens` gives) manage workspaces."""
    first = registry(request).first
    first.tokens.require_admin(first.tokens.authenticate(token_value(request)))


def _shape(ws: Workspace) -> dict:
    return {
        "id": ws.tokens.workspace_id,
        "name": ws.name,
        "token": ws.tokens.local_tokens()["workspace_admin_token"],
        "role": "admin",
        "plan": "dev",
    }


async def list_workspaces(request: Request) -> Response:
    _manager(request)
    found = registry(request)
    return JSONResponse(
        {"organization_id": found.first.tokens.workspace_id, "workspaces": [_shape(ws) for ws in found.all()]}
    )


async def create(request: Request) -> Response:
    _manager(request)
    ws = await run_in_threadpool(registry(request).create, request.query_params.get("name", ""))
    return JSONResponse(_shape(ws))


async def delete(request: Request) -> Response:
    _manager(request)
    await run_in_threadpool(registry(request).delete, request.path_params["id"])
    return Response(status_code=204)

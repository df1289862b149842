"""`POST /v1/deploy` and `/v1/deployments`: `tb deploy` and `tb deployment create|ls|promote|discard`.

The CLI sends the token of its workspace as `Authorization: Bearer`, and the project's datafiles as `tb build` does
(upload.py). The deployment steps are local/deployments.py's; here, the query flags and Tinybird's JSON shapes.
"""

from __future__ import annotations

import threading

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import upload
from ..deployments import Deployments
from .common import admin, workspace

_stores_lock = threading.Lock()


async def _deployments(request: Request) -> Deployments:
    """The deployments of the caller's workspace (an admin token's); opened, and any step a stop interrupted
    cleaned up, on first use after a start."""
    admin(request)
    ws, stores = workspace(request), request.app.state.deployments

    def open_store() -> Deployments:
        with _stores_lock:
            if ws.tokens.workspace_id not in stores:
                stores[ws.tokens.workspace_id] = Deployments(ws)
            return stores[ws.tokens.workspace_id]

    return await run_in_threadpool(open_store)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() in ("true", "1")


async def deploy(request: Request) -> Response:
    deployments = await _deployments(request)
    files = await upload.datafiles(request)
    result, deployment = await run_in_threadpool(
        deployments.create,
        files,
        check=_flag(request, "check"),
        auto_promote=_flag(request, "auto_promote"),
        allow_destructive=_flag(request, "allow_destructive_operations"),
    )
    return JSONResponse({"result": result, "deployment": deployment})


async def list_deployments(request: Request) -> Response:
    listed = (await _deployments(request)).listed(include_deleted=_flag(request, "include_deleted"))
    return JSONResponse({"deployments": listed})


async def get(request: Request) -> Response:
    found = (await _deployments(request)).get(request.path_params["id"])
    return JSONResponse({"deployment": found.as_json()})


async def set_live(request: Request) -> Response:
    deployments = await _deployments(request)
    promoted = await run_in_threadpool(deployments.set_live, request.path_params["id"])
    return JSONResponse({"deployment": promoted.as_json()})


async def delete(request: Request) -> Response:
    deployments = await _deployments(request)
    removed = await run_in_threadpool(deployments.delete, request.path_params["id"])
    return JSONResponse({"deployment": removed.as_json()})

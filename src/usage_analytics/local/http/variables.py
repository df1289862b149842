"""Secrets (`/v0/variables`), as the `tb` CLI sets them from a project's `.env` files: admin tokens only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import bodies
from .common import admin, workspace


async def _form(request: Request) -> dict:
    form = await bodies.form(request, workspace(request).settings.max_form_body, "a form")
    return {**request.query_params, **{k: v for k, v in form.items() if isinstance(v, str)}}


async def list_secrets(request: Request) -> Response:
    admin(request)
    store = workspace(request).secrets
    return JSONResponse({"variables": [store.describe(name) for name in store.names()]})


async def read(request: Request) -> Response:
    admin(request)
    return JSONResponse(workspace(request).secrets.describe(request.path_params["name"]))


async def create(request: Request) -> Response:
    admin(request)
    form = await _form(request)
    ws = workspace(request)
    answer = ws.secrets.put(str(form.get("name", "")), str(form.get("value", "")), create=True)
    ws.secrets_changed()
    return JSONResponse(answer)


async def update(request: Request) -> Response:
    admin(request)
    form = await _form(request)
    ws = workspace(request)
    answer = ws.secrets.put(request.path_params["name"], str(form.get("value", "")), create=False)
    ws.secrets_changed()
    return JSONResponse(answer)


async def delete(request: Request) -> Response:
    admin(request)
    ws = workspace(request)
    ws.secrets.delete(request.path_params["name"])
    ws.secrets_changed()
    return Response(status_code=204)

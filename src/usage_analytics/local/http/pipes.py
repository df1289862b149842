"""The Pipes API: an endpoint's data (`/v0/pipes/<name>.json|.csv|.ndjson`), its SQL and plan, OpenAPI, the list."""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import bodies
from ..errors import RequestError
from ..openapi import document as openapi_document
from .common import admin, base_url, parameters, token, workspace

_OUTPUT_FORMATS = {
    "json": ("JSON", "application/json"),
    "csv": ("CSVWithNames", "text/csv; charset=utf-8"),
    "ndjson": ("JSONEachRow", "application/x-ndjson"),
}


async def data(request: Request) -> Response:
    name, _, ext = request.path_params["file"].rpartition(".")
    if ext not in _OUTPUT_FORMATS or not name:
        raise RequestError(404, f"Unknown format '{ext}': use .json, .csv or .ndjson")
    ws, caller = workspace(request), token(request)
    renderer = ws.endpoint(name)
    ws.tokens.require(caller, "PIPES:READ", name)
    values = parameters(request)
    if request.method == "POST" and request.headers.get("content-type", "").startswith("application/json"):
        values.update(await bodies.json_parameters(request, ws.settings.max_form_body, ws.settings.max_param_bytes))
    values.update(caller.fixed_params.get(name, {}))  # a JWT's fixed_params win over the caller's
    fmt, media = _OUTPUT_FORMATS[ext]

    def run() -> tuple[bytes, float, float]:
        started = time.perf_counter()
        sql = renderer.render(values)
        rendered = time.perf_counter()
        return ws.run_read_query(sql, fmt), rendered - started, time.perf_counter() - rendered

    body, render_s, engine_s = await run_in_threadpool(run)
    # what the server spent rendering and inside chDB, so a client can tell the server's own cost from the query's
    timing = f"render;dur={render_s * 1000:.3f}, engine;dur={engine_s * 1000:.3f}"
    return Response(body, media_type=media, headers={"Server-Timing": timing})


async def explain(request: Request) -> Response:
    """The SQL an endpoint runs for these parameters, and ClickHouse's plan of it (admin token)."""
    admin(request)
    ws = workspace(request)
    sql = ws.endpoint(request.path_params["name"]).render(parameters(request))
    plan = await run_in_threadpool(ws.run_read_query, f"EXPLAIN indexes = 1 {sql}", "TSVRaw")
    return JSONResponse({"debug_query": sql, "query_explain": plan.decode()})


async def openapi(request: Request) -> Response:
    """The OpenAPI document of every endpoint the token may read (one endpoint's, under its name)."""
    ws, caller = workspace(request), token(request)
    only = request.path_params.get("name")
    names = [only] if only else sorted(ws.project.endpoints)
    if only:
        ws.tokens.require(caller, "PIPES:READ", only)  # before the lookup: no hint whether it exists
        ws.endpoint(only)
    readable = [n for n in names if caller.allows("PIPES:READ", n)]
    return JSONResponse(await run_in_threadpool(openapi_document, ws, readable, base_url(request)))


async def list_pipes(request: Request) -> Response:
    # only the pipes the token may read: "the pipes you have access to", as Tinybird lists them
    # (https://www.tinybird.co/docs/forward/dev-reference/commands/tb-pipe)
    ws, caller = workspace(request), token(request)
    pipes = [
        {"name": p.name, "description": p.description, "type": p.kind or "default", "nodes": [n.name for n in p.nodes]}
        for p in ws.project.pipes.values()
        if caller.allows("PIPES:READ", p.name)
    ]
    return JSONResponse({"pipes": pipes})

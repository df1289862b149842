"""The Pipes API: an endpoint's data (`/v0/pipes/<name>.json|.csv|.ndjson`), its SQL and plan, OpenAPI, the pipe
objects (one, and the list), and the example URL the `tb` CLI prints for an endpoint."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from .. import bodies
from ..errors import NotFound, bad_request
from ..openapi import document as openapi_document
from . import shapes
from .common import admin, base_url, parameters, token, workspace

_OUTPUT_FORMATS = {
    "json": ("JSON", "application/json"),
    "csv": ("CSVWithNames", "text/csv; charset=utf-8"),
    "ndjson": ("JSONEachRow", "application/x-ndjson"),
}


async def data(request: Request) -> Response:
    name, ext = request.path_params["name"], request.path_params["fmt"]
    if ext not in _OUTPUT_FORMATS:
        raise NotFound(f"Unknown format '{ext}': use .json, .csv or .ndjson")
    ws, caller = workspace(request), token(request)
    renderer = ws.endpoint(name)
    ws.tokens.require(caller, "PIPES:READ", name)
    values = parameters(request)
    if request.method == "POST":
        values.update(await _posted_parameters(request))
    values.update(caller.fixed_params.get(name, {}))  # a JWT's fixed_params win over the caller's
    fmt, media = _OUTPUT_FORMATS[ext]
    started = time.perf_counter()
    sql = renderer.rendered(values)
    rendered = time.perf_counter()
    body = ws.kept_read(sql, fmt) if sql is not None else None
    if body is not None:  # asked before and still current: answered here, with no worker thread and no template
        return _answer(body, media, rendered - started, time.perf_counter() - rendered, "hit")

    def run() -> tuple[bytes, float, float, str]:
        started = time.perf_counter()
        sql = renderer.render(values)
        rendered = time.perf_counter()
        body, cache = ws.cached_read(sql, fmt)
        return body, rendered - started, time.perf_counter() - rendered, cache

    body, render_s, engine_s, cache = await run_in_threadpool(run)
    return _answer(body, media, render_s, engine_s, cache)


def _answer(body: bytes, media: str, render_s: float, engine_s: float, cache: str) -> Response:
    # what the server spent rendering and inside chDB (or its result cache), so a client can tell the server's own
    # cost from the query's, and whether the answer was kept from an earlier identical read (a hit)
    timing = f'render;dur={render_s * 1000:.3f}, engine;dur={engine_s * 1000:.3f}, cache;desc="{cache}"'
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


async def _posted_parameters(request: Request) -> dict[str, str]:
    """Parameters in a POST body: a JSON object, or a form (`tb endpoint data` posts one when its URL would pass
    4096 characters), each value bounded as in the URL."""
    limits = workspace(request).settings
    if request.headers.get("content-type", "").startswith("application/json"):
        return await bodies.json_parameters(request, limits.max_form_body, limits.max_param_bytes)
    if not bodies.is_form(request):
        return {}
    form = await bodies.form(request, limits.max_form_body, "a pipe's parameters")
    values = {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "token"}
    bodies.check_values(values, limits.max_param_bytes)
    return values


async def describe(request: Request) -> Response:
    """`GET /v0/pipes/<name>`: the pipe object, with its nodes' SQL and types (what `tb test run` reads)."""
    ws, caller, name = workspace(request), token(request), request.path_params["name"]
    ws.tokens.require(caller, "PIPES:READ", name)  # before the lookup: no hint whether it exists
    found = ws.project.pipes.get(name)
    if found is None:
        raise NotFound(f"Pipe '{name}' not found")
    return JSONResponse(shapes.pipe(found, base_url(request)))


async def list_pipes(request: Request) -> Response:
    """The pipes the token may read: "the pipes you have access to", as Tinybird lists them
    (https://www.tinybird.co/docs/forward/dev-reference/commands/tb-pipe); `attrs=` and `node_attrs=` keep only
    the fields named, as `tb endpoint ls` asks."""
    ws, caller, params = workspace(request), token(request), request.query_params
    attrs, node_attrs = params.get("attrs", ""), params.get("node_attrs", "")
    pipes = []
    for found in ws.project.pipes.values():
        if caller.allows("PIPES:READ", found.name):
            shape = shapes.pipe(found, base_url(request))
            nodes = [shapes.only(n, node_attrs) for n in shape["nodes"]]
            pipes.append({**shapes.only(shape, attrs), "nodes": nodes})
    return JSONResponse({"pipes": pipes})


async def example_url(request: Request) -> Response:
    """`GET /examples/query.http?pipe=&format=&token=`: the URL of an endpoint's data, as text. Tinybird Local
    answers with its internal address (the CLI puts its own host in place of `http://localhost:8001`); this server
    answers with the address it was called at, which is right for the CLI and for anyone else."""
    ws, params = workspace(request), request.query_params
    name, fmt = params.get("pipe", ""), params.get("format", "json")
    ws.tokens.require(token(request), "PIPES:READ", name)
    ws.endpoint(name)
    if fmt not in _OUTPUT_FORMATS:
        raise bad_request(f"Unknown format '{fmt}': use json, csv or ndjson")
    query = urlencode({k: params[k] for k in ("q", "token") if params.get(k)})
    return PlainTextResponse(f"{base_url(request)}/v0/pipes/{name}.{fmt}" + (f"?{query}" if query else ""))

"""Tinybird's HTTP API over a Workspace: same routes, JSON shapes, status codes and error bodies."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import bodies, formats, remote
from .auth import Token
from .engine import EngineError
from .openapi import document as openapi_document
from .pipes import RequestError, bad_request
from .project import ProjectError
from .workspace import BuildError, Workspace

_OUTPUT_FORMATS = {
    "json": ("JSON", "application/json"),
    "csv": ("CSVWithNames", "text/csv; charset=utf-8"),
    "ndjson": ("JSONEachRow", "application/x-ndjson"),
}
_SQL_MEDIA = {"JSON": "application/json", "JSONEachRow": "application/x-ndjson", "CSVWithNames": "text/csv"}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _token(request: Request, workspace: Workspace) -> Token:
    header = request.headers.get("authorization", "")
    value = header[7:].strip() if header.lower().startswith("bearer ") else request.query_params.get("token")
    return workspace.tokens.authenticate(value)


def build_app(workspace: Workspace) -> Starlette:
    def handler(fn: Callable[[Request], Awaitable[Response]]):
        async def wrapped(request: Request) -> Response:
            try:
                bodies.check_url(request, workspace.settings.max_url_bytes)
                return await fn(request)
            except RequestError as exc:
                return error(exc.status, exc.message, exc.headers)
            except (ProjectError, BuildError) as exc:
                return error(400, str(exc))
            except EngineError as exc:
                # the engine failed on a well-formed request: say so plainly; a full disk is 507
                full = "NOT_ENOUGH_SPACE" in str(exc) or "No space left" in str(exc)
                return error(507 if full else 500, f"The request failed and stored nothing: {exc}")

        return wrapped

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def local_tokens(request: Request) -> Response:
        if workspace.settings.expose_tokens is False:
            raise RequestError(
                403,
                "GET /tokens is off: the server listens beyond loopback, and this route gives anyone the admin "
                "token; start it with --expose-tokens to allow it",
            )
        return JSONResponse(workspace.tokens.local_tokens())

    async def list_tokens(request: Request) -> Response:
        workspace.tokens.require_admin(_token(request, workspace))
        return JSONResponse({"tokens": [t.as_json() for t in workspace.tokens.all()]})

    async def workspace_info(request: Request) -> Response:
        workspace.tokens.require_admin(_token(request, workspace))
        return JSONResponse({"id": workspace.tokens.workspace_id, "name": workspace.project_dir.name})

    async def events(request: Request) -> Response:
        token = _token(request, workspace)
        ds = workspace.datasource(request.query_params.get("name"))
        workspace.tokens.require(token, "DATASOURCES:APPEND", ds.name)
        body = await bodies.events_body(request, workspace.settings.max_events_body)

        def append():
            with workspace.gate(ds).append() as headers:
                return workspace.ingest(ds, body), headers

        result, headers = await run_in_threadpool(append)
        wait = request.query_params.get("wait", "false").lower() in ("true", "1")
        return JSONResponse(result.as_json(), status_code=200 if wait else 202, headers=headers)

    async def import_data(request: Request) -> Response:
        """The Data Sources API: `mode=append|replace` with an uploaded file, a body, or `url=`."""
        token = _token(request, workspace)
        params = request.query_params
        mode = params.get("mode", "append")
        ds = workspace.datasource(params.get("name"))
        if mode == "append":
            workspace.tokens.require(token, "DATASOURCES:APPEND", ds.name)
        else:
            workspace.tokens.require_admin(token)  # replace: DATASOURCES:CREATE or ADMIN in Tinybird
        if params.get("replace_condition") and mode != "replace":  # refused before any file is read or fetched
            raise bad_request("replace_condition applies only to mode=replace; an append adds every row of the file")
        url, stream, source, field_name = params.get("url"), None, None, None
        limit, api = workspace.settings.max_import_bytes, "the Data Sources API"
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await bodies.form(request, limit, api)
            url = url or form.get("url")
            upload = next(((k, v) for k, v in form.multi_items() if hasattr(v, "read")), None)
            if upload:
                field_name, stream, source = upload[0], upload[1].file, upload[1].filename
        else:
            body = await bodies.spool(request, limit, api)
            head = body.read(4)
            body.seek(0)
            if head == b"url=":  # a form with the URL (curl -d url=...)
                text = body.read(workspace.settings.max_form_body + 1)
                body.close()
                if len(text) > workspace.settings.max_form_body:
                    raise bodies.too_large(workspace.settings.max_form_body, "a form")
                url = url or parse_qs(text.decode("utf-8", "replace")).get("url", [""])[0]
            elif head:  # the file itself as the body (curl --data-binary @file)
                stream = body
            else:
                body.close()
        if url:
            stream, source = await run_in_threadpool(remote.open_url, str(url), token.admin, workspace)
        if stream is None:
            raise bad_request("Send the data as a file (multipart form), as the request body, or as url=")
        fmt = formats.detect_format(params.get("format"), field_name, source)
        dialect = {"delimiter": params.get("dialect_delimiter"), "escapechar": params.get("dialect_escapechar")}
        try:
            result = await run_in_threadpool(
                workspace.import_file, ds, fmt, stream, mode, params.get("replace_condition"), dialect
            )
        finally:
            stream.close()
        return JSONResponse(result.as_json(str(request.base_url).rstrip("/")))

    async def delete_data(request: Request) -> Response:
        workspace.tokens.require_admin(_token(request, workspace))  # DATASOURCES:CREATE or ADMIN in Tinybird
        ds = workspace.datasource(request.path_params["name"])
        form = await bodies.form(request, workspace.settings.max_form_body, "a form")
        condition = form.get("delete_condition") or request.query_params.get("delete_condition") or ""
        dry_run = str(form.get("dry_run") or request.query_params.get("dry_run") or "false").lower() == "true"
        result = await run_in_threadpool(workspace.delete_rows, ds, str(condition), dry_run)
        if dry_run:
            return JSONResponse({"rows_to_be_deleted": result})
        return JSONResponse(result.as_json(str(request.base_url).rstrip("/")))

    async def job(request: Request) -> Response:
        token = _token(request, workspace)
        found = workspace.jobs.get(request.path_params["id"])
        if found is None:
            raise RequestError(404, f"Job '{request.path_params['id']}' not found")
        if not token.has_scope_on(found.datasource.name):  # a job is its datasource's: admin, or a scope on it
            raise RequestError(403, f"Forbidden: token {token.name} has no scope on {found.datasource.name}")
        return JSONResponse(found.as_json(str(request.base_url).rstrip("/")))

    async def pipe_data(request: Request) -> Response:
        name, _, ext = request.path_params["file"].rpartition(".")
        if ext not in _OUTPUT_FORMATS or not name:
            raise RequestError(404, f"Unknown format '{ext}': use .json, .csv or .ndjson")
        token = _token(request, workspace)
        renderer = workspace.endpoint(name)
        workspace.tokens.require(token, "PIPES:READ", name)
        values = {k: v for k, v in request.query_params.items() if k != "token"}
        if request.method == "POST" and request.headers.get("content-type", "").startswith("application/json"):
            settings = workspace.settings
            values.update(await bodies.json_parameters(request, settings.max_form_body, settings.max_param_bytes))
        values.update(token.fixed_params.get(name, {}))  # a JWT's fixed_params win over the caller's
        fmt, media = _OUTPUT_FORMATS[ext]

        def run() -> tuple[bytes, float, float]:
            started = time.perf_counter()
            sql = renderer.render(values)
            rendered = time.perf_counter()
            return workspace.run_read_query(sql, fmt), rendered - started, time.perf_counter() - rendered

        body, render_s, engine_s = await run_in_threadpool(run)
        # what the server spent rendering and inside chDB, so a client can tell the server's own cost from the query's
        timing = f"render;dur={render_s * 1000:.3f}, engine;dur={engine_s * 1000:.3f}"
        return Response(body, media_type=media, headers={"Server-Timing": timing})

    async def explain(request: Request) -> Response:
        """The SQL an endpoint runs for these parameters, and ClickHouse's plan of it (admin token)."""
        workspace.tokens.require_admin(_token(request, workspace))
        renderer = workspace.endpoint(request.path_params["name"])
        values = {k: v for k, v in request.query_params.items() if k != "token"}
        sql = renderer.render(values)
        plan = await run_in_threadpool(lambda: workspace.run_read_query(f"EXPLAIN indexes = 1 {sql}", "TSVRaw"))
        return JSONResponse({"debug_query": sql, "query_explain": plan.decode()})

    async def openapi(request: Request) -> Response:
        """The OpenAPI document of every endpoint the token may read (one endpoint's, under its name)."""
        token = _token(request, workspace)
        only = request.path_params.get("name")
        names = [only] if only else sorted(workspace.project.endpoints)
        if only:
            workspace.tokens.require(token, "PIPES:READ", only)  # before the lookup: no hint whether it exists
            workspace.endpoint(only)
        readable = [n for n in names if token.allows("PIPES:READ", n)]
        base = str(request.base_url).rstrip("/")
        return JSONResponse(await run_in_threadpool(openapi_document, workspace, readable, base))

    async def list_pipes(request: Request) -> Response:
        # only the pipes the token may read: "the pipes you have access to", as Tinybird lists them
        # (https://www.tinybird.co/docs/forward/dev-reference/commands/tb-pipe)
        token = _token(request, workspace)
        pipes = [
            {
                "name": p.name,
                "description": p.description,
                "type": p.kind or "default",
                "nodes": [n.name for n in p.nodes],
            }
            for p in workspace.project.pipes.values()
            if token.allows("PIPES:READ", p.name)
        ]
        return JSONResponse({"pipes": pipes})

    async def sql(request: Request) -> Response:
        workspace.tokens.require_admin(_token(request, workspace))
        q = request.query_params.get("q")
        if q is None and request.method == "POST":
            limit = workspace.settings.max_form_body
            if bodies.is_form(request):
                q = (await bodies.form(request, limit, "/v0/sql")).get("q")
            else:
                bodies.encoding(request)
                q = (await bodies.read(request, limit, "/v0/sql")).decode("utf-8", "replace")
        body, fmt = await run_in_threadpool(workspace.sql_query, q or "")
        return Response(body, media_type=_SQL_MEDIA.get(fmt, "text/plain; charset=utf-8"))

    async def list_datasources(request: Request) -> Response:
        # only the datasources the token may read (DATASOURCES:READ, or admin), as Tinybird lists them:
        # https://docs.tinybird.co/api-reference/datasource-api
        token = _token(request, workspace)
        listed = await run_in_threadpool(workspace.datasources_info)
        return JSONResponse({"datasources": [d for d in listed if token.allows("DATASOURCES:READ", d["name"])]})

    async def datasource_info(request: Request) -> Response:
        token = _token(request, workspace)
        workspace.tokens.require(token, "DATASOURCES:READ", request.path_params["name"])  # no hint whether it exists
        ds = workspace.datasource(request.path_params["name"])
        return JSONResponse(await run_in_threadpool(workspace.datasource_info, ds))

    async def truncate(request: Request) -> Response:
        workspace.tokens.require_admin(_token(request, workspace))
        ds = workspace.datasource(request.path_params["name"])
        await run_in_threadpool(workspace.truncate, ds)
        return Response(status_code=204)

    async def build(request: Request) -> Response:
        workspace.tokens.require_admin(_token(request, workspace))
        report = await run_in_threadpool(workspace.build)
        return JSONResponse({"result": "success", "changes": report.lines})

    async def not_found(request: Request, exc) -> Response:
        return error(404, f"Not found: {request.url.path}")

    async def method_not_allowed(request: Request, exc) -> Response:
        return error(405, f"Method {request.method} not allowed on {request.url.path}")

    async def internal_error(request: Request, exc) -> Response:
        return error(500, f"Internal error: {type(exc).__name__}")

    routes = [
        Route("/v0/health", handler(health)),
        Route("/tokens", handler(local_tokens)),
        Route("/v0/tokens", handler(list_tokens)),
        Route("/v0/workspace", handler(workspace_info)),
        Route("/v0/events", handler(events), methods=["POST"]),
        Route("/v0/pipes", handler(list_pipes)),
        Route("/v0/pipes/openapi.json", handler(openapi)),
        Route("/v0/pipes/{name}/openapi.json", handler(openapi)),
        Route("/v0/pipes/{name}/explain", handler(explain)),
        Route("/v0/pipes/{file}", handler(pipe_data), methods=["GET", "POST"]),
        Route("/v0/sql", handler(sql), methods=["GET", "POST"]),
        Route("/v0/datasources", handler(list_datasources)),
        Route("/v0/datasources", handler(import_data), methods=["POST"]),
        Route("/v0/datasources/{name}", handler(datasource_info)),
        Route("/v0/datasources/{name}/truncate", handler(truncate), methods=["POST"]),
        Route("/v0/datasources/{name}/delete", handler(delete_data), methods=["POST"]),
        Route("/v0/jobs/{id}", handler(job)),
        Route("/v0/build", handler(build), methods=["POST"]),
    ]
    handlers = {404: not_found, 405: method_not_allowed, 500: internal_error, Exception: internal_error}
    return Starlette(routes=routes, exception_handlers=handlers)

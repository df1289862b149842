"""The Data Sources API: list and describe datasources, import files (append, replace), delete rows, truncate, jobs."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import bodies, formats, remote
from ..errors import Forbidden, NotFound, bad_request
from . import shapes
from .common import admin, base_url, token, workspace

# the format of a raw body, by its Content-Type: what `tb datasource append` and `tb build` send
_CONTENT_TYPES = {"application/x-ndjson": "ndjson", "text/csv": "csv", "application/vnd.apache.parquet": "parquet"}


async def list_datasources(request: Request) -> Response:
    # only the datasources the token may read (DATASOURCES:READ, or admin), as Tinybird lists them:
    # https://docs.tinybird.co/api-reference/datasource-api
    ws, caller = workspace(request), token(request)
    readable = [ds for name, ds in ws.project.datasources.items() if caller.allows("DATASOURCES:READ", name)]
    listed = await run_in_threadpool(lambda: [shapes.datasource(ws, ds) for ds in readable])
    return JSONResponse({"datasources": listed})


async def info(request: Request) -> Response:
    ws = workspace(request)
    ws.tokens.require(token(request), "DATASOURCES:READ", request.path_params["name"])  # no hint whether it exists
    ds = ws.datasource(request.path_params["name"])
    return JSONResponse(await run_in_threadpool(shapes.datasource, ws, ds))


async def _source(request: Request, allow_admin_files: bool):
    """The file of an import: (stream, its name or URL, the form field it came in), from a multipart upload, the
    raw body, or `url=` (in the query string or a form)."""
    ws, params = workspace(request), request.query_params
    url, stream, source, field_name = params.get("url"), None, None, None
    limit, api = ws.settings.max_import_bytes, "the Data Sources API"
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
            text = body.read(ws.settings.max_form_body + 1)
            body.close()
            if len(text) > ws.settings.max_form_body:
                raise bodies.too_large(ws.settings.max_form_body, "a form")
            url = url or parse_qs(text.decode("utf-8", "replace")).get("url", [""])[0]
        elif head:  # the file itself as the body (curl --data-binary @file)
            stream = body
        else:
            body.close()
    if url:
        stream, source = await run_in_threadpool(remote.open_url, str(url), allow_admin_files, ws)
    if stream is None:
        raise bad_request("Send the data as a file (multipart form), as the request body, or as url=")
    return stream, source, field_name


async def import_data(request: Request) -> Response:
    """`POST /v0/datasources?name=&mode=append|replace` with an uploaded file, a body, or `url=`."""
    params = request.query_params
    return await _import(request, params.get("name"), params.get("mode", "append"))


async def append_v1(request: Request) -> Response:
    """`POST /v1/datasources/<name>/append`: the same import, named by its path, as the `tb` CLI sends it (the raw
    file as the body, its format in `format=` or the Content-Type)."""
    return await _import(request, request.path_params["name"], "append")


async def replace_v1(request: Request) -> Response:
    return await _import(request, request.path_params["name"], "replace")


async def _import(request: Request, name: str | None, mode: str) -> Response:
    ws, caller, params = workspace(request), token(request), request.query_params
    ds = ws.datasource(name)
    if mode == "append":
        ws.tokens.require(caller, "DATASOURCES:APPEND", ds.name)
    else:
        ws.tokens.require_admin(caller)  # replace: DATASOURCES:CREATE or ADMIN in Tinybird
    if params.get("replace_condition") and mode != "replace":  # refused before any file is read or fetched
        raise bad_request("replace_condition applies only to mode=replace; an append adds every row of the file")
    stream, source, field_name = await _source(request, caller.admin)
    try:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fmt = formats.detect_format(params.get("format"), field_name, source, _CONTENT_TYPES.get(content_type))
        dialect = {"delimiter": params.get("dialect_delimiter"), "escapechar": params.get("dialect_escapechar")}
        condition = params.get("replace_condition")
        result = await run_in_threadpool(ws.import_file, ds, fmt, stream, mode, condition, dialect)
    finally:
        stream.close()
    return JSONResponse(shapes.job(result, base_url(request)))


async def delete(request: Request) -> Response:
    admin(request)  # DATASOURCES:CREATE or ADMIN in Tinybird
    ws = workspace(request)
    ds = ws.datasource(request.path_params["name"])
    form = await bodies.form(request, ws.settings.max_form_body, "a form")
    condition = form.get("delete_condition") or request.query_params.get("delete_condition") or ""
    dry_run = str(form.get("dry_run") or request.query_params.get("dry_run") or "false").lower() == "true"
    result = await run_in_threadpool(ws.delete_rows, ds, str(condition), dry_run)
    if dry_run:
        return JSONResponse({"rows_to_be_deleted": result})
    return JSONResponse(shapes.job(result, base_url(request)))


async def truncate(request: Request) -> Response:
    admin(request)
    ws = workspace(request)
    await run_in_threadpool(ws.truncate, ws.datasource(request.path_params["name"]))
    return Response(status_code=204)


async def job(request: Request) -> Response:
    caller = token(request)
    found = workspace(request).jobs.get(request.path_params["id"])
    if found is None:
        raise NotFound(f"Job '{request.path_params['id']}' not found")
    # a job is its datasource's (a copy's, its pipe's too): admin, or a scope on it
    if not caller.has_scope_on(found.datasource.name) and not (found.pipe and caller.has_scope_on(found.pipe.name)):
        raise Forbidden(f"Forbidden: token {caller.name} has no scope on {found.datasource.name}")
    return JSONResponse(shapes.job(found, base_url(request)))


async def list_jobs(request: Request) -> Response:
    """The workspace's latest jobs, newest first (admin), optionally of one `status` and `kind`, as `tb job ls`
    and `tb deploy` ask."""
    admin(request)
    status, kind = request.query_params.get("status"), request.query_params.get("kind")
    listed = [
        shapes.job_summary(found, base_url(request))
        for found in reversed(list(workspace(request).jobs.values()))  # a copy: imports add jobs meanwhile
        if kind in (None, found.kind) and status in (None, "done")
    ]
    return JSONResponse({"jobs": listed})

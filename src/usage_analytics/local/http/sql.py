"""The Query API: `/v0/sql?q=SELECT ...` over the workspace's datasources and pipes (admin tokens)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import bodies
from .common import admin, workspace

_MEDIA = {"JSON": "application/json", "JSONEachRow": "application/x-ndjson", "CSVWithNames": "text/csv"}


async def query(request: Request) -> Response:
    admin(request)
    ws = workspace(request)
    q = request.query_params.get("q")
    if q is None and request.method == "POST":
        limit = ws.settings.max_form_body
        if bodies.is_form(request):
            q = (await bodies.form(request, limit, "/v0/sql")).get("q")
        else:  # the raw query as the body, as `tb sql` sends a long one
            bodies.encoding(request)
            q = (await bodies.read(request, limit, "/v0/sql")).decode("utf-8", "replace")
    body, fmt = await run_in_threadpool(ws.sql_query, q or "")
    return Response(body, media_type=_MEDIA.get(fmt, "text/plain; charset=utf-8"))

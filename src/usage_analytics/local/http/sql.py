"""The Query API: `/v0/sql?q=SELECT ...` over the workspace's datasources and pipes (admin tokens).

As `tb sql` and `tb test run` call it: `q` in the query string, a form, or (when long) the raw body; `pipeline=` names
a pipe whose nodes `q` may read, and every other parameter is a template value for a templated `q` and those nodes.
Answers go through the result cache as endpoints' do (resultcache.py); `Server-Timing` says hit, miss or bypass.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import bodies
from .common import admin, parameters, workspace

_MEDIA = {"JSON": "application/json", "JSONEachRow": "application/x-ndjson", "CSVWithNames": "text/csv"}


async def query(request: Request) -> Response:
    admin(request)
    ws = workspace(request)
    values = parameters(request)
    q, pipeline = values.pop("q", None), values.pop("pipeline", None)
    if q is None and request.method == "POST":
        limit = ws.settings.max_form_body
        if bodies.is_form(request):
            form = await bodies.form(request, limit, "/v0/sql")
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "token"}
            q, pipeline = fields.pop("q", None), fields.pop("pipeline", pipeline)
            values.update(fields)
        else:  # the raw query as the body, as `tb sql` sends a long one
            bodies.encoding(request)
            q = (await bodies.read(request, limit, "/v0/sql")).decode("utf-8", "replace")
    bodies.check_values(values, ws.settings.max_param_bytes)

    def run() -> tuple[bytes, str, str]:
        select, fmt = ws.sql_select(q or "", pipeline, values)
        return *ws.cached_read(select, fmt), fmt

    body, cache, fmt = await run_in_threadpool(run)
    media = _MEDIA.get(fmt, "text/plain; charset=utf-8")
    return Response(body, media_type=media, headers={"Server-Timing": f'cache;desc="{cache}"'})

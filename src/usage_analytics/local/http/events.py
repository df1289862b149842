"""The Events API: NDJSON rows (or a JSON array, or one object) appended to a datasource."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import bodies
from .common import token, workspace


async def append(request: Request) -> Response:
    ws, caller = workspace(request), token(request)
    ds = ws.datasource(request.query_params.get("name"))
    ws.tokens.require(caller, "DATASOURCES:APPEND", ds.name)
    body = await bodies.events_body(request, ws.settings.max_events_body)

    def run():
        with ws.gate(ds).append() as headers:
            return ws.ingest(ds, body), headers

    result, headers = await run_in_threadpool(run)
    wait = request.query_params.get("wait", "false").lower() in ("true", "1")
    return JSONResponse(result.as_json(), status_code=200 if wait else 202, headers=headers)

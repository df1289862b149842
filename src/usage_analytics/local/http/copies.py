"""The Copy Pipes API: `POST /v0/pipes/<name>/copy` runs a copy pipe on demand, as Tinybird's does
(https://www.tinybird.co/docs/api-reference/pipe-api/copy-pipes-api, and `tb copy run --mode --param`:
https://www.tinybird.co/docs/forward/dev-reference/commands/tb-copy). The template's parameters come in the query
string, `_mode=append|replace` overrides the pipe's COPY_MODE. The answer is the pipe with its copy `job` and a
`tags.copy_target_datasource`, which is what `tb copy run` reads of it (tinybird/tb/modules/copy.py); `GET
/v0/jobs/<id>` shows the job again. It runs within the request, so it is `done` (or the request fails) when answered.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import copies
from . import shapes
from .common import base_url, parameters, token, workspace


async def run(request: Request) -> Response:
    ws, caller, name = workspace(request), token(request), request.path_params["name"]
    ws.tokens.require(caller, "PIPES:READ", name)  # admin, or a token of the pipe; before the lookup: no hint
    values = parameters(request)
    mode = values.pop("_mode", None)
    result = await run_in_threadpool(copies.run_copy, ws, name, values, mode)
    # the target by name, which `GET /v0/datasources/<name>` answers (Tinybird gives its id, which it answers too)
    tags = {"copy_target_datasource": result.datasource.name}
    job = shapes.job(result, base_url(request))
    return JSONResponse({**shapes.pipe(result.pipe, base_url(request)), "tags": tags, "job": job})

"""`POST /v1/build`: `tb build` (and `tb test run`) uploading a project's datafiles into the token's workspace.

The datafiles are written into the workspace's own `build/` folder in its state dir, never into a `--project-dir`
(the user's source), and the workspace is built from them. The answer is what the CLI reads: the names of what the
build added, changed and deleted (all empty: "No changes. Build skipped.", and the CLI loads no fixtures), or on a
refusal `result: failed` with each problem's datafile (the exception handler shapes that one).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import upload
from ..build import BuildReport
from ..errors import bad_request
from ..workspace import Workspace
from .common import admin, workspace


async def build(request: Request) -> Response:
    admin(request)
    files = await upload.datafiles(request)
    if not files:  # the CLI sends none only if the project has none; building nothing would delete everything
        raise bad_request("A build needs the project's datafiles: parts named data_project:// with their paths")
    report = await run_in_threadpool(_build, workspace(request), files)
    return JSONResponse({"result": "success", "build": {**report.changes.as_json(), "feedback": []}})


def _build(ws: Workspace, files: dict[PurePosixPath, str]) -> BuildReport:
    folder = Path(ws.state_dir) / "build"
    with ws.build_lock, upload.replacing(folder):
        upload.write_folder(files, folder)
        return ws.build(folder)

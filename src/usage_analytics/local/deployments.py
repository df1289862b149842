"""A workspace's deployments, as Tinybird keeps them for `tb deploy` and `tb deployment create|ls|promote|discard`.

A deployment is an uploaded project staged beside the live one and then promoted (staging.py), by itself when
`auto_promote` asks, or by `set-live`. Statuses are Tinybird's: `calculating` (the plan) → `creating_schema`
(the copy built) → `schema_ready` → `data_ready` (in staging), or `failed`; removal `deleting` → `deleted`. `live`
is apart from the status: the live deployment stays `data_ready`. Id "0" is the seed, the workspace as its build
left it, live until a deployment is promoted (`tb deployment ls` hides it); ids are integer strings, listed oldest
first (`tb deployment promote` takes the first as live and the second as the candidate).

Each step runs within the request that asks for it, so a deployment is `data_ready` (or live) before the CLI's
first poll and `--wait` ends at once. A promotion deletes the deployment it replaces. One deployment is staged at a
time, as in Tinybird. The records are kept in the workspace's state dir (`deployments.json`) and a deployment's
datafiles and build state under `deployments/<id>/`; a server stopped in the middle of a step finds the record
unfinished when it opens them again: a creation is failed and cleaned up, a removal finished.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath

from . import deployplan, staging, upload
from .build import BuildError, read_project
from .engine import EngineError
from .errors import InternalError, NotFound, RequestError, bad_request
from .project import Project
from .workspace import Workspace

CREATING = ("calculating", "creating_schema", "schema_ready")
_FAILURES = (BuildError, staging.Refused, EngineError, RequestError)


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Deployment:
    id: str
    status: str
    live: bool
    created_at: str
    updated_at: str
    database: str  # where its tables are: the workspace's own while live; once replaced, the replaced tables'
    allow_destructive: bool = False
    report: dict = field(default_factory=dict)  # what it changes (deployplan.py), and its errors

    def as_json(self) -> dict:
        return {
            "errors": [],
            "feedback": [],
            **self.report,
            "id": self.id,
            "status": self.status,
            "live": self.live,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _errors(exc: Exception) -> list[dict]:
    if isinstance(exc, BuildError):
        return [{"filename": p.filename, "error": p.error} for p in exc.problems]
    if isinstance(exc, staging.Refused):
        return exc.plan.errors
    return [{"filename": "", "error": exc.message if isinstance(exc, RequestError) else str(exc)}]


class Deployments:
    def __init__(self, ws: Workspace):
        self.ws = ws
        self._path = ws.state_dir / "deployments.json"
        self._home = ws.state_dir / "deployments"
        self._lock = threading.Lock()  # one step at a time (a create, a promotion, a removal); reads go on
        if self._path.exists():
            self._records = {d["id"]: Deployment(**d) for d in json.loads(self._path.read_text())}
        else:
            now = _now()
            self._records = {"0": Deployment("0", "data_ready", True, now, now, ws.database)}
            self._save()
        with self._lock:
            for dep in list(self._records.values()):
                if dep.status in CREATING:
                    self._fail(dep, InternalError("The server stopped while this deployment was being created"))
                elif dep.status == "deleting":
                    self._remove(dep)

    # ---- reads --------------------------------------------------------------------------------------------------
    def listed(self, include_deleted: bool = False) -> list[dict]:
        ordered = sorted(list(self._records.values()), key=lambda d: int(d.id))
        return [d.as_json() for d in ordered if include_deleted or d.status != "deleted"]

    def get(self, deployment_id: str) -> Deployment:
        found = self._records.get(deployment_id)
        if found is None:
            raise NotFound(f"Deployment '{deployment_id}' not found")
        return found

    # ---- steps --------------------------------------------------------------------------------------------------
    def create(
        self, files: dict[PurePosixPath, str], check: bool, auto_promote: bool, allow_destructive: bool
    ) -> tuple[str, dict]:
        """A deployment of `files`: `(result, deployment)` as `POST /v1/deploy` answers them. A check, a project
        that changes nothing and one refused as it is planned create none."""
        with self._lock:
            staged = next((d for d in self._records.values() if not d.live and d.status == "data_ready"), None)
            if staged is not None and not check:
                raise bad_request(
                    f"Deployment {staged.id} is in staging: promote it (tb deployment promote) or discard it "
                    "(tb deployment discard) before creating another one"
                )
            new_id = str(max(int(key) for key in self._records) + 1)
            folder = self._home / new_id / "project"
            upload.write_folder(files, folder)
            try:
                uploaded = read_project(folder)
            except BuildError as exc:
                shutil.rmtree(folder.parent)
                return "failed", {"errors": _errors(exc), "feedback": []}
            plan = deployplan.plan(self.ws.project, uploaded, self.ws.engine, self.ws.database, allow_destructive)
            if check or plan.errors or not plan.changes_anything:
                shutil.rmtree(folder.parent)
                result = "failed" if plan.errors else "success" if plan.changes_anything else "no_changes"
                return result, plan.report()
            now, database = _now(), self.ws.staging_database(new_id)
            dep = Deployment(new_id, "calculating", False, now, now, database, allow_destructive, plan.report())
            self._records[new_id] = dep
            self._save()
            try:
                self._set(dep, "creating_schema")
                if auto_promote:
                    self._promote(dep, uploaded)
                else:
                    staging.prepare(self.ws, dep.id, uploaded, allow_destructive)
                    self._set(dep, "schema_ready")
                    self._set(dep, "data_ready")
            except _FAILURES as exc:
                self._fail(dep, exc)
                return "failed", dep.as_json()
            return "success", dep.as_json()

    def set_live(self, deployment_id: str) -> Deployment:
        with self._lock:
            dep = self.get(deployment_id)
            if dep.live:
                return dep
            if dep.status != "data_ready":
                raise bad_request(f"Deployment {dep.id} is {dep.status}: only one in staging (data_ready) can go live")
            try:
                self._promote(dep, read_project(self._home / dep.id / "project"))
            except _FAILURES as exc:
                self._fail(dep, exc)
                raise bad_request(f"Deployment {dep.id} failed to go live: {exc}") from None
            return dep

    def delete(self, deployment_id: str) -> Deployment:
        with self._lock:
            dep = self.get(deployment_id)
            self._remove(dep)
            return dep

    def _promote(self, dep: Deployment, uploaded: Project) -> None:
        """Stage `dep` again with every write held, swap it in, and delete the deployment it replaces."""
        previous = next(d for d in self._records.values() if d.live)
        with self.ws.writes_held():
            copy, plan = staging.prepare(self.ws, dep.id, uploaded, dep.allow_destructive)
            dep.report = plan.report()  # planned against the live workspace as it is now
            for status in ("schema_ready", "data_ready"):
                if dep.status != "data_ready":
                    self._set(dep, status)
            staging.promote(self.ws, copy, plan)
            previous.live, previous.database = False, copy.database  # the staging database now holds its tables
            dep.live, dep.database = True, self.ws.database
            self._set(dep, "data_ready")
        shutil.rmtree(self._home / dep.id, ignore_errors=True)  # its datafiles are the workspace's now
        self._remove(previous)

    def _fail(self, dep: Deployment, exc: Exception) -> None:
        dep.report = {**dep.report, "errors": _errors(exc)}
        self._set(dep, "failed")
        self._remove(dep)

    def _remove(self, dep: Deployment) -> None:
        if dep.live:
            raise bad_request(f"Deployment {dep.id} is live: promote another deployment before deleting it")
        if dep.status == "deleted":
            return
        self._set(dep, "deleting")
        if dep.database != self.ws.database:
            self.ws.engine.query(f"DROP DATABASE IF EXISTS `{dep.database}` SYNC")
        shutil.rmtree(self._home / dep.id, ignore_errors=True)
        self._set(dep, "deleted")

    def _set(self, dep: Deployment, status: str) -> None:
        dep.status, dep.updated_at = status, _now()
        self._save()

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(d) for d in self._records.values()], indent=2))
        tmp.replace(self._path)

"""Several workspaces on one server, as Tinybird Local holds them, each a chDB database with its own tokens.

chDB allows one data path per process, so workspaces are databases inside it, not processes. The workspace that
`--project-dir` builds at start is the first one, over database `tb` and the data dir's own tokens (what
`make run` serves and prints); the others (created through `/v1/workspaces`, as `tb --local` does for its
project and test workspaces) keep their tokens, build state and uploaded datafiles under
`<data-dir>/workspaces/<id>/`, and are listed in `<data-dir>/workspaces.json` so that they survive a restart.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import uuid
from pathlib import Path

from .errors import Conflict, Forbidden, NotFound, bad_request
from .workspace import Workspace

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def default_name(project_dir: Path) -> str:
    """The name `tb --local` looks for: `.tinyb`'s `name`, else the folder's (so the CLI finds this workspace)."""
    try:
        name = json.loads((project_dir / ".tinyb").read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) and _NAME.match(name) else project_dir.name


class Registry:
    def __init__(self, first: Workspace):
        self.first = first
        self.first.name = default_name(first.project_dir)
        self._root = first.data_dir / "workspaces"
        self._index = first.data_dir / "workspaces.json"
        self._lock = threading.Lock()
        self._others: dict[str, Workspace] = {}
        for entry in json.loads(self._index.read_text()) if self._index.exists() else []:
            self._others[entry["id"]] = self._open(entry["id"], entry["name"])

    def _open(self, workspace_id: str, name: str) -> Workspace:
        home = self._root / workspace_id
        (home / "build").mkdir(parents=True, exist_ok=True)  # the datafiles of its last `tb build` (http/build.py)
        tokens = home / "tokens.json"
        if not tokens.exists():  # the workspace's id is its tokens' workspace id, which its JWTs carry
            tokens.write_text(json.dumps({"__workspace_id__": workspace_id}))
        ws = Workspace(
            home / "build",
            self.first.data_dir,
            self.first.settings,
            engine=self.first.engine,
            database=f"ws_{workspace_id.replace('-', '')}",
            state_dir=home,
        )
        ws.name = name
        ws.build()
        return ws

    def _save(self) -> None:
        entries = [{"id": key, "name": ws.name} for key, ws in self._others.items()]
        tmp = self._index.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=2))
        tmp.replace(self._index)

    def all(self) -> list[Workspace]:
        return [self.first, *self._others.values()]

    def for_token(self, value: str | None) -> Workspace:
        """The workspace a token belongs to; the first one when none does (its check then refuses the token)."""
        if value:
            for ws in self.all():
                if ws.tokens.owns(value):
                    return ws
        return self.first

    def find(self, key: str) -> Workspace:
        for ws in self.all():
            if key in (ws.tokens.workspace_id, ws.name):
                return ws
        raise NotFound(f"Workspace '{key}' not found")

    def create(self, name: str) -> Workspace:
        if not name or not _NAME.match(name):
            raise bad_request(f"Invalid workspace name '{name}': letters, digits and _ only, starting with a letter")
        with self._lock:
            if any(ws.name == name for ws in self.all()):
                raise Conflict(f"A workspace named '{name}' already exists")
            workspace_id = str(uuid.uuid4())
            self._others[workspace_id] = ws = self._open(workspace_id, name)
            self._save()
            return ws

    def delete(self, key: str) -> None:
        """A hard delete: the workspace's tables, tokens and files go; the first workspace cannot be deleted."""
        ws = self.find(key)
        if ws is self.first:
            raise Forbidden("The workspace the server was started with cannot be deleted")
        with self._lock:
            self._others = {k: w for k, w in self._others.items() if w is not ws}
            self._save()
        ws.drop()
        shutil.rmtree(ws.state_dir, ignore_errors=True)

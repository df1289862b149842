"""A workspace's secrets, as Tinybird keeps them (`/v0/variables`) and templates read them (`tb_secret('name')`).

Values are stored in the workspace's state dir (mode 0600) and never answered back: a template gets a query
parameter placeholder, and the value is bound by ClickHouse at query time, so it never enters the rendered SQL
(nor the render cache, nor an error message). As in Tinybird Local, a project's `.env` and `.env.local` are
loaded as secrets when it is built.
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

from dotenv import dotenv_values

from .errors import Conflict, NotFound, bad_request

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_SECRET_BYTES = 64 * 1024


class SecretStore:
    def __init__(self, state_dir: Path):
        self._path = Path(state_dir) / "secrets.json"
        self._lock = threading.Lock()
        self._items: dict[str, dict] = json.loads(self._path.read_text()) if self._path.exists() else {}

    def _save(self) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self._items, handle)
        tmp.replace(self._path)

    def names(self) -> list[str]:
        return sorted(self._items)

    def values(self) -> dict[str, str]:
        """Every secret by name: the query parameters a rendered `tb_secret()` placeholder is bound to."""
        return {name: item["value"] for name, item in self._items.items()}

    def describe(self, name: str) -> dict:
        item = self._items.get(name)
        if item is None:
            raise NotFound(f"Secret '{name}' not found")
        return {"name": name, "type": "secret", "created_at": item["created_at"], "updated_at": item["updated_at"]}

    def put(self, name: str, value: str, create: bool) -> dict:
        if not name or not _NAME.match(name):
            raise bad_request(f"Invalid secret name {name!r}: letters, digits and _ only, starting with a letter")
        if len(value.encode()) > MAX_SECRET_BYTES:
            raise bad_request(f"The value of secret '{name}' is over {MAX_SECRET_BYTES // 1024} KB")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            if create and name in self._items:
                raise Conflict(f"Secret '{name}' already exists: update it with PUT /v0/variables/{name}")
            if not create and name not in self._items:
                raise NotFound(f"Secret '{name}' not found")
            created = self._items.get(name, {}).get("created_at", now)
            self._items[name] = {"value": value, "created_at": created, "updated_at": now}
            self._save()
        return self.describe(name)

    def delete(self, name: str) -> None:
        with self._lock:
            if self._items.pop(name, None) is None:
                raise NotFound(f"Secret '{name}' not found")
            self._save()

    def load_env(self, project_dir: Path) -> list[str]:
        """`.env`, then `.env.local` (which wins), as Tinybird Local loads them; returns the names set."""
        found: dict[str, str] = {}
        for name in (".env", ".env.local"):
            path = Path(project_dir) / name
            if path.is_file():
                found.update({k: v for k, v in dotenv_values(path).items() if v})
        for name, value in found.items():
            if _NAME.match(name):
                self.put(name, value, create=name not in self._items)
        return sorted(found)

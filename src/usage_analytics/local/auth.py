"""Tokens as Tinybird has them: workspace admin tokens, and static tokens declared in datafiles.

`TOKEN <name> READ` in a pipe grants PIPES:READ on it; `TOKEN <name> APPEND` (or READ) in a datasource
grants DATASOURCES:APPEND (or READ) on it. Tokens are stored in the data dir, so they survive restarts.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .pipes import RequestError
from .project import Project

ADMIN_NAMES = ("admin_token", "user_token", "workspace_admin_token")


@dataclass
class Token:
    name: str
    token: str
    admin: bool = False
    scopes: set[tuple[str, str]] = field(default_factory=set)  # (scope, resource name)

    def allows(self, scope: str, resource: str) -> bool:
        return self.admin or (scope, resource) in self.scopes

    def as_json(self) -> dict:
        scopes = [{"type": s, "resource": r} for s, r in sorted(self.scopes)]
        return {"name": self.name, "token": self.token, "scopes": [{"type": "ADMIN"}] if self.admin else scopes}


class TokenStore:
    def __init__(self, data_dir: Path):
        self._path = Path(data_dir) / "tokens.json"
        self._secrets: dict[str, str] = json.loads(self._path.read_text()) if self._path.exists() else {}
        self._by_value: dict[str, Token] = {}
        self.sync(None)

    def _secret(self, name: str) -> str:
        if name not in self._secrets:
            self._secrets[name] = "p." + secrets.token_urlsafe(32)
        return self._secrets[name]

    def sync(self, project: Project | None) -> None:
        """Create the admin tokens and one token per name declared in the datafiles (stable values)."""
        tokens = {name: Token(name, self._secret(name), admin=True) for name in ADMIN_NAMES}
        if project is not None:
            for kind, resources, scope_of in (
                ("pipe", project.pipes, {"READ": "PIPES:READ"}),
                ("datasource", project.datasources, {"READ": "DATASOURCES:READ", "APPEND": "DATASOURCES:APPEND"}),
            ):
                for resource in resources.values():
                    for token_name, permission in resource.tokens:
                        token = tokens.setdefault(token_name, Token(token_name, self._secret(token_name)))
                        if permission not in scope_of:
                            raise ValueError(f"{kind} {resource.name}: unknown token permission {permission}")
                        token.scopes.add((scope_of[permission], resource.name))
        self._by_value = {t.token: t for t in tokens.values()}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._secrets, indent=2))
        tmp.replace(self._path)

    @property
    def admin_token(self) -> str:
        return self._secrets["admin_token"]

    def local_tokens(self) -> dict[str, str]:
        """What Tinybird Local's `GET /tokens` answers."""
        return {name: self._secrets[name] for name in ADMIN_NAMES}

    def all(self) -> list[Token]:
        return sorted(self._by_value.values(), key=lambda t: t.name)

    def authenticate(self, value: str | None) -> Token:
        if not value:
            raise RequestError(403, "Missing token: pass it as Authorization: Bearer <token> or ?token=<token>")
        token = self._by_value.get(value)
        if token is None:
            raise RequestError(403, "Invalid token")
        return token

    @staticmethod
    def require(token: Token, scope: str, resource: str) -> None:
        if not token.allows(scope, resource):
            raise RequestError(403, f"Forbidden: token {token.name} has no {scope} scope on {resource}")

    @staticmethod
    def require_admin(token: Token) -> None:
        if not token.admin:
            raise RequestError(403, f"Forbidden: token {token.name} is not an admin token")

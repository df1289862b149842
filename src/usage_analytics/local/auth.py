"""Tokens as Tinybird has them: workspace admin tokens, static tokens declared in datafiles, and JWTs.

`TOKEN <name> READ` in a pipe grants PIPES:READ on it; `TOKEN <name> APPEND` (or READ) in a datasource
grants DATASOURCES:APPEND (or READ) on it. Tokens are stored in the data dir, so they survive restarts.
A JWT is signed (HS256) with the workspace admin token and carries its own scopes; its `fixed_params`
override whatever the caller passes, which is how a tenant's dashboard is kept to its tenant.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jwt

from .errors import Forbidden, TooManyRequests
from .project import Project

ADMIN_NAMES = ("admin_token", "user_token", "workspace_admin_token")
_WORKSPACE_ID = "__workspace_id__"  # stored beside the token secrets; no token can have this name


@dataclass
class Token:
    name: str
    token: str
    admin: bool = False
    scopes: set[tuple[str, str]] = field(default_factory=set)  # (scope, resource name)
    fixed_params: dict[str, dict[str, str]] = field(default_factory=dict)  # pipe -> parameters it cannot change
    rps: float | None = None  # requests per second allowed, JWT `limits.rps`

    def allows(self, scope: str, resource: str) -> bool:
        return self.admin or (scope, resource) in self.scopes

    def has_scope_on(self, resource: str) -> bool:
        """Any scope at all on `resource` (who may follow a job on a datasource), or admin."""
        return self.admin or any(name == resource for _, name in self.scopes)

    def as_json(self) -> dict:
        scopes = [{"type": s, "resource": r} for s, r in sorted(self.scopes)]
        return {"name": self.name, "token": self.token, "scopes": [{"type": "ADMIN"}] if self.admin else scopes}


class RateLimiter:
    """Per-token requests per second, over a sliding one-second window, as JWT `limits.rps` asks."""

    def __init__(self):
        self._calls: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def check(self, token: Token) -> None:
        if not token.rps:
            return
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._calls.get(token.token, []) if now - t < 1.0]
            if len(recent) >= token.rps:
                self._calls[token.token] = recent
                raise TooManyRequests(
                    f"Rate limit of {token.rps:g} requests per second exceeded for {token.name}",
                    headers={
                        "Retry-After": "1",
                        "X-RateLimit-Limit": f"{token.rps:g}",
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": str(int(time.time()) + 1),  # epoch seconds, as Tinybird's clients read it
                    },
                )
            recent.append(now)
            self._calls[token.token] = recent


class TokenStore:
    def __init__(self, data_dir: Path):
        self._path = Path(data_dir) / "tokens.json"
        self._secrets: dict[str, str] = json.loads(self._path.read_text()) if self._path.exists() else {}
        self._by_value: dict[str, Token] = {}
        self._limiter = RateLimiter()
        self.sync(None)

    def _secret(self, name: str) -> str:
        if name not in self._secrets:
            self._secrets[name] = "p." + secrets.token_urlsafe(32)
        return self._secrets[name]

    def sync(self, project: Project | None) -> None:
        """Create the admin tokens and one token per name declared in the datafiles (stable values)."""
        self._secrets.setdefault(_WORKSPACE_ID, str(uuid.uuid4()))
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

    @property
    def workspace_id(self) -> str:
        return self._secrets[_WORKSPACE_ID]

    def owns(self, value: str) -> bool:
        """Whether `value` is one of this workspace's tokens, or a JWT that names this workspace (unverified: the
        signature is checked by `authenticate`)."""
        if value in self._by_value:
            return True
        try:
            claims = jwt.decode(value, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return isinstance(claims, dict) and claims.get("workspace_id") == self.workspace_id

    def authenticate(self, value: str | None) -> Token:
        if not value:
            raise Forbidden("Missing token: pass it as Authorization: Bearer <token> or ?token=<token>")
        token = self._by_value.get(value) or (self._from_jwt(value) if value.count(".") == 2 else None)
        if token is None:
            raise Forbidden("Invalid token")
        self._limiter.check(token)
        return token

    def _from_jwt(self, value: str) -> Token:
        """A JWT signed (HS256) with one of the workspace's admin tokens, as Tinybird's docs sign them: `admin_token`
        or `workspace_admin_token` (`GET /tokens` gives both; `user_token` is the account's, not the workspace's)."""
        claims = None
        for name in ("admin_token", "workspace_admin_token"):
            try:
                claims = jwt.decode(value, self._secrets[name], algorithms=["HS256"], options={"require": ["exp"]})
                break
            except jwt.InvalidSignatureError as exc:
                failure = exc
            except jwt.ExpiredSignatureError:
                raise Forbidden("Invalid token: the JWT has expired") from None
            except jwt.PyJWTError as exc:
                raise Forbidden(f"Invalid token: {exc}") from None
        if claims is None:
            raise Forbidden(f"Invalid token: {failure}")
        if claims.get("workspace_id") != self.workspace_id:
            raise Forbidden("Invalid token: the JWT is for another workspace")
        return _jwt_token(claims, value)

    @staticmethod
    def require(token: Token, scope: str, resource: str) -> None:
        if not token.allows(scope, resource):
            raise Forbidden(f"Forbidden: token {token.name} has no {scope} scope on {resource}")

    @staticmethod
    def require_admin(token: Token) -> None:
        if not token.admin:
            raise Forbidden(f"Forbidden: token {token.name} is not an admin token")


_JSON_NAMES = {str: "string", list: "list", dict: "object", (int, float): "number"}


def _claim(claims: dict, key: str, kind: type | tuple, default):
    """A claim of the JSON type Tinybird's JWTs give it (null or absent: the default); any other type makes the
    token invalid instead of failing the request."""
    value = claims.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or isinstance(value, bool):  # JSON true is no number
        raise Forbidden(f"Invalid token: the JWT claim '{key}' must be a {_JSON_NAMES[kind]}")
    return value


def _jwt_token(claims: dict, value: str) -> Token:
    """The Token a verified JWT's claims describe, as Tinybird reads them: `name`, `scopes` of PIPES:READ on a
    `resource` with optional `fixed_params`, and `limits.rps`
    (https://www.tinybird.co/docs/forward/administration/tokens/jwt)."""
    token = Token(_claim(claims, "name", str, "jwt"), value)
    for scope in _claim(claims, "scopes", list, []):
        resource = _claim(scope, "resource", str, "") if isinstance(scope, dict) else ""
        if not resource or scope.get("type") != "PIPES:READ":
            raise Forbidden("Invalid token: JWT scopes must be PIPES:READ with a resource")
        fixed = _claim(scope, "fixed_params", dict, {})
        for name, param in fixed.items():
            if not isinstance(param, (str, int, float, bool)):  # a value for a template parameter, never a structure
                raise Forbidden(f"Invalid token: fixed_params.{name} must be a string, number or boolean")
        token.scopes.add(("PIPES:READ", resource))
        token.fixed_params[resource] = {k: str(v) for k, v in fixed.items()}
    rps = _claim(_claim(claims, "limits", dict, {}), "rps", (int, float), None)
    if rps is not None and not 0 < rps < math.inf:  # Python's JSON reads NaN and Infinity too
        raise Forbidden("Invalid token: the JWT claim 'rps' must be a positive number")
    token.rps = float(rps) if rps is not None else None
    return token

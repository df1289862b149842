"""What every handler needs: the workspace a request is for, its token, and the base URL of job links."""

from __future__ import annotations

from starlette.requests import Request

from ..auth import Token
from ..workspace import Workspace
from ..workspaces import Registry


def token_value(request: Request) -> str | None:
    """The token as sent: `Authorization: Bearer <token>` or `?token=<token>`."""
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else request.query_params.get("token")


def registry(request: Request) -> Registry:
    return request.app.state.registry


def workspace(request: Request) -> Workspace:
    """The workspace the request's token belongs to (the server's first one when it has none)."""
    found = getattr(request.state, "workspace", None)
    if found is None:
        found = request.state.workspace = registry(request).for_token(token_value(request))
    return found


def token(request: Request) -> Token:
    """The caller's token; a missing or unknown one is a 403."""
    return workspace(request).tokens.authenticate(token_value(request))


def admin(request: Request) -> Token:
    found = token(request)
    workspace(request).tokens.require_admin(found)
    return found


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def parameters(request: Request) -> dict[str, str]:
    """The query string without the token: what a pipe is asked."""
    return {k: v for k, v in request.query_params.items() if k != "token"}

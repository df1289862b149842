"""What every handler needs: the workspace a request is for, its token, and the base URL of job links."""

from __future__ import annotations

from starlette.requests import Request

from ..auth import Token
from ..workspace import Workspace


def workspace(request: Request) -> Workspace:
    return request.app.state.workspace


def token(request: Request) -> Token:
    """The caller's token, from `Authorization: Bearer` or `?token=`; a missing or unknown one is a 403."""
    header = request.headers.get("authorization", "")
    value = header[7:].strip() if header.lower().startswith("bearer ") else request.query_params.get("token")
    return workspace(request).tokens.authenticate(value)


def admin(request: Request) -> Token:
    found = token(request)
    workspace(request).tokens.require_admin(found)
    return found


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def parameters(request: Request) -> dict[str, str]:
    """The query string without the token: what a pipe is asked."""
    return {k: v for k, v in request.query_params.items() if k != "token"}

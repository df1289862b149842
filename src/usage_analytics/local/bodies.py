"""Request bodies read and inflated in bounded memory: every limit is checked as the bytes arrive, never after.

A body is refused (413) as soon as it passes its limit, whether its Content-Length says so or its chunks add up
to it; a compressed body is inflated in a worker thread, a piece at a time, and stops at the same limit, so a
small gzip of a gigabyte costs what the limit allows and never holds the event loop. A Data Sources API file is
spooled to disk as it arrives (formats.py then streams it), so its size costs disk, not memory.
"""

from __future__ import annotations

import json
import tempfile
from typing import BinaryIO

from isal import isal_zlib
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from .errors import PayloadTooLarge, RequestError, UnsupportedMediaType, bad_request

_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}  # zlib's window bits: gzip header, zlib header
_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")
_SPOOL_IN_MEMORY = 1024 * 1024  # a file body up to this size stays in memory, larger ones go to a temporary file


def size_text(limit: int) -> str:
    """A limit as people write it: 10 MB, 8 KB."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def too_large(limit: int, api: str, detail: str = "") -> RequestError:
    return PayloadTooLarge(f"Request body{detail} exceeds the {size_text(limit)} limit of {api}")


def encoding(request: Request, accepted: tuple[str, ...] = ()) -> str:
    """The body's Content-Encoding ('' for none), refused with a 415 unless this route can inflate it."""
    name = request.headers.get("content-encoding", "").strip().lower()
    if name in ("", "identity") or name in accepted:
        return "" if name == "identity" else name
    supported = ", ".join(accepted) if accepted else "none"
    raise UnsupportedMediaType(f"Content-Encoding '{name}' is not supported here (supported: {supported})")


def _bounded(request: Request, limit: int, api: str) -> Request:
    """The same request, refused with a 413 once its Content-Length or the bytes received pass `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit, api, f" of {declared} bytes")
    received = 0

    async def receive():
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise too_large(limit, api)
        return message

    return Request(request.scope, receive)


async def read(request: Request, limit: int, api: str) -> bytes:
    return await _bounded(request, limit, api).body()


def inflate(body: bytes, name: str, limit: int, api: str) -> bytes:
    """`body` inflated, a bounded piece at a time: past `limit` inflated bytes it stops with a 413."""
    pieces, size, data = [], 0, body
    try:
        while data:  # a gzip body may be several members one after another, as `cat a.gz b.gz` makes
            inflater = isal_zlib.decompressobj(_WBITS[name])
            while data and not inflater.eof:
                piece = inflater.decompress(data, limit + 1 - size)
                size += len(piece)
                if size > limit:
                    raise too_large(limit, api, " once inflated")
                pieces.append(piece)
                data = inflater.unconsumed_tail
            if not inflater.eof:
                raise bad_request(f"Request body is not valid {name} data: it ends before its last block")
            data = inflater.unused_data if _WBITS[name] == 31 else b""
    except isal_zlib.error:
        raise bad_request(f"Request body is not valid {name} data") from None
    return b"".join(pieces)


async def events_body(request: Request, limit: int, api: str = "the Events API") -> bytes:
    """An Events API body: at most `limit` bytes sent and `limit` bytes once inflated."""
    name = encoding(request, tuple(_WBITS))
    body = await read(request, limit, api)
    return await run_in_threadpool(inflate, body, name, limit, api) if name else body


def is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(_FORMS)


async def form(request: Request, limit: int, api: str) -> FormData:
    """A multipart or urlencoded form of at most `limit` bytes (Starlette spools its files to disk); a form
    that cannot be parsed, such as multipart without a boundary, is a 400 with Tinybird's error body."""
    encoding(request)
    try:
        return await _bounded(request, limit, api).form()
    except HTTPException as exc:
        raise RequestError(exc.status_code, f"The form cannot be read: {exc.detail}") from None


async def spool(request: Request, limit: int, api: str) -> BinaryIO:
    """The body as a file, written as it arrives: in memory while small, on disk beyond."""
    encoding(request, ("gzip", "x-gzip"))  # a gzip body is inflated as a file is, by its magic bytes
    file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - the caller closes it
    try:
        async for chunk in _bounded(request, limit, api).stream():
            file.write(chunk)
    except BaseException:
        file.close()
        raise
    file.seek(0)
    return file


async def json_parameters(request: Request, limit: int, max_value: int) -> dict[str, str]:
    """A POST body of pipe parameters: one JSON object, each value at most `max_value` bytes as text."""
    encoding(request)
    body = await read(request, limit, "a pipe's parameters")
    try:
        payload = json.loads(body)
        values = {str(k): str(v) for k, v in payload.items()} if isinstance(payload, dict) else None
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser (or repr) goes
        values = None
    if values is None:
        raise bad_request("A POST body must be a JSON object of parameters")
    check_values(values, max_value)
    return values


def check_values(values: dict[str, str], max_value: int) -> None:
    """Every parameter value at most `max_value` bytes (UTF-8), wherever it came from."""
    for name, value in values.items():
        size = len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
        if size > max_value:
            raise PayloadTooLarge(f"Parameter '{name}' is {size} bytes, over the {size_text(max_value)} limit")

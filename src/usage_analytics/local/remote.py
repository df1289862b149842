"""The file behind a Data Sources API `url=`: an http(s) download, or a file:// path inside the project.

As in Tinybird, a token that may append to a datasource may append from a URL (DATASOURCES:APPEND on it:
https://www.tinybird.co/docs/concepts/auth-tokens, https://docs.tinybird.co/api-reference/datasource-api).
The download comes from the server's own network, so such a token can make the server send a GET anywhere it
reaches. What comes back is bounded like any import file (settings.max_import_bytes once inflated, by
formats.chunks), and in time: a timeout between reads and one for the whole download. A failure says only
"could not fetch <url>: HTTP <status>", or one reason for every connection failure, so that the answer never
tells an open port from a closed one.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlparse

from isal import isal_zlib

from .errors import Forbidden, RequestError, bad_request
from .settings import ServerSettings

if TYPE_CHECKING:
    import requests

    from .workspace import Workspace

CHUNK = 64 * 1024
_MAX_REDIRECTS = 5


def open_url(url: str, admin: bool, workspace: Workspace) -> tuple[BinaryIO, str]:
    """The file at `url` as a stream for workspace.import_file, and its name (which may tell the format).

    The stream stays open until the caller closes it: the import reads it in a worker thread afterwards.
    """
    try:
        parsed = urlparse(url)
    except ValueError:
        raise bad_request(f"url={url} is not a valid URL") from None
    if parsed.scheme == "file":
        return _open_file(url, parsed.netloc, unquote(parsed.path), admin, workspace), parsed.path
    if parsed.scheme in ("http", "https"):
        return _download(url, workspace.settings), parsed.path
    raise bad_request(f"url={url}: use an http(s):// URL, or a file:// path on the server")


def _open_file(url: str, host: str, path: str, admin: bool, workspace: Workspace) -> BinaryIO:
    """A file:// path (admin only; our addition to Tinybird), confined to the project folder and the data dir."""
    if not admin:
        raise Forbidden("Forbidden: only an admin token may import from a file:// URL")
    outside = Forbidden(f"url={url}: only files in the project folder or the data dir can be imported")
    if host not in ("", "localhost"):
        raise outside
    try:
        resolved = Path(path).resolve()  # every symlink followed, so a link inside cannot lead out
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        raise outside from None
    # the same answer whether or not the file exists outside, so the server's files cannot be probed
    if not any(resolved.is_relative_to(root) for root in (workspace.project_dir, workspace.data_dir)):
        raise outside
    if not resolved.is_file():
        raise bad_request(f"url={url}: no such file on the server")
    try:
        return open(resolved, "rb")
    except OSError:
        raise bad_request(f"url={url}: the file cannot be read") from None


def _download(url: str, settings: ServerSettings) -> BinaryIO:
    import requests  # here, not at the top: a server that never fetches a URL does not pay for importing it at start

    session = requests.Session()
    session.trust_env = False  # no proxy or .netrc credentials from the server's environment go to a caller's URL
    session.max_redirects = _MAX_REDIRECTS
    try:
        response = session.get(url, stream=True, timeout=settings.fetch_timeout, headers={"Accept-Encoding": "gzip"})
    except (requests.RequestException, ValueError):
        session.close()
        raise _failed(url, "the connection failed") from None
    try:
        if not response.ok:
            raise _failed(url, f"HTTP {response.status_code}")
        deadline = time.monotonic() + settings.max_fetch_seconds
        return io.BufferedReader(_Download(url, response, session, deadline), CHUNK)
    except BaseException:
        response.close()
        session.close()
        raise


def _failed(url: str, reason: str) -> RequestError:
    return bad_request(f"could not fetch {url}: {reason}")


class _Download(io.RawIOBase):
    """An http(s) response body as a file, read until `deadline`; close() closes the connection.

    A `Content-Encoding: gzip` is undone here, CHUNK bytes at a time, so a small bomb never expands in memory
    past one chunk; what comes out (a .gz file too) is then read like an upload: inflated and bounded by
    formats.chunks."""

    def __init__(self, url: str, response: requests.Response, session: requests.Session, deadline: float):
        self._url, self._response, self._session, self._deadline = url, response, session, deadline
        self._pending = memoryview(b"")
        encoding = response.headers.get("content-encoding", "").lower()
        if encoding not in ("", "identity", "gzip", "x-gzip"):
            raise _failed(url, f"unsupported Content-Encoding {encoding}")
        self._chunks = self._gunzipped(self._received()) if "gzip" in encoding else self._received()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._response.close()
        self._session.close()
        super().close()

    def _received(self) -> Iterator[bytes]:
        import urllib3  # imported by requests already, in _download

        chunks = self._response.raw.stream(CHUNK, decode_content=False)
        while True:
            if time.monotonic() > self._deadline:
                raise _failed(self._url, "the download took too long")
            try:
                chunk = next(chunks, None)
            except (urllib3.exceptions.HTTPError, OSError):
                raise _failed(self._url, "the connection failed") from None
            if chunk is None:
                return
            yield chunk

    def _gunzipped(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        inflater = isal_zlib.decompressobj(wbits=31)
        for data in chunks:
            while True:
                try:
                    out = inflater.decompress(data, CHUNK)
                except isal_zlib.error:
                    raise _failed(self._url, "the body is not valid gzip data") from None
                if out:
                    yield out
                data = inflater.unconsumed_tail
                if inflater.eof and inflater.unused_data:  # several gzip members, as `cat a.gz b.gz` makes
                    data, inflater = inflater.unused_data, isal_zlib.decompressobj(wbits=31)
                elif not data and len(out) < CHUNK:
                    break
        if not inflater.eof:
            raise _failed(self._url, "the body is not valid gzip data")

"""The datafiles `tb build` and `tb deploy` upload: multipart parts named `data_project://`, one per file.

The CLI sends each `.datasource`, `.pipe` and `.connection` file of the project (three folders deep) with its path
relative to the project as the part's file name, plus a `context://` part with its version. They are written
into a folder of the workspace's own (never the server's `--project-dir`), which the build then reads with
Tinybird's parser like any project folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from starlette.requests import Request

from . import bodies
from .errors import bad_request

DATAFILE_PARTS = ("data_project://", "data_project_vendored://")
DATAFILE_SUFFIXES = (".datasource", ".pipe", ".connection")
MAX_PROJECT_BYTES = 64 * 1024 * 1024  # every datafile of a project together


def _safe_path(name: str | None) -> PurePosixPath:
    """A part's file name as a path inside the project: relative, no `..`, a datafile's suffix."""
    path = PurePosixPath((name or "").replace("\\", "/"))
    if not name or path.is_absolute() or ".." in path.parts or path.suffix not in DATAFILE_SUFFIXES:
        raise bad_request(f"Invalid datafile name {name!r}: a relative path to a .datasource, .pipe or .connection")
    return path


async def datafiles(request: Request) -> dict[PurePosixPath, str]:
    """The uploaded datafiles, by path relative to the project."""
    form = await bodies.form(request, MAX_PROJECT_BYTES, "a build")
    files: dict[PurePosixPath, str] = {}
    for key, value in form.multi_items():
        if key not in DATAFILE_PARTS or not hasattr(value, "read"):
            continue
        path = _safe_path(value.filename)
        try:
            files[path] = (await value.read()).decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request(f"{path}: a datafile must be UTF-8 text") from None
    return files


def write_folder(files: dict[PurePosixPath, str], folder: Path) -> None:
    """Make `folder` hold exactly these datafiles (anything else in it is removed first)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for path, text in files.items():
        target = folder.joinpath(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


@contextmanager
def replacing(folder: Path) -> Iterator[None]:
    """Within this block `folder` may be rewritten (with `write_folder`) and built; if the block raises, its
    previous files come back: the workspace still serves them, and rebuilds from them after a restart."""
    previous = folder.with_name(folder.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if folder.exists():
        folder.rename(previous)
    try:
        yield
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if previous.exists():
            previous.rename(folder)
        raise
    shutil.rmtree(previous, ignore_errors=True)

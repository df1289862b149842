"""The `usage-analytics` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import requests
from dotenv import load_dotenv

DEFAULT_HOST = "http://127.0.0.1:7181"


def _fail(message: str) -> None:
    raise click.ClickException(message)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Product and API usage analytics on Tinybird, with an embedded Tinybird-compatible server."""
    load_dotenv(Path.cwd() / ".env")


@main.command()
@click.option("--project-dir", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--data-dir", default=".tinybird-local", show_default=True, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=7181, show_default=True, type=int)
def local(project_dir: Path, data_dir: Path, host: str, port: int) -> None:
    """Serve the project's datasources and endpoints with Tinybird's API, on chDB (no Docker)."""
    from .local import BuildError, ProjectError, serve
    from .local.engine import DataDirLocked

    try:
        serve(project_dir, data_dir, host, port, echo=lambda line: click.echo(line, err=False))
    except (ProjectError, BuildError, DataDirLocked) as exc:
        _fail(str(exc))


def _host_and_token(host: str | None, token: str | None) -> tuple[str, str]:
    host = (host or os.environ.get("TB_HOST") or DEFAULT_HOST).rstrip("/")
    token = token or os.environ.get("TB_TOKEN")
    if not token:
        try:
            token = requests.get(f"{host}/tokens", timeout=5).json()["workspace_admin_token"]
        except (requests.RequestException, ValueError, KeyError):
            _fail(f"no token: set TB_TOKEN (or --token); {host}/tokens did not give one")
    return host, token


@main.command()
@click.option("--host", help="Server base URL (default: TB_HOST or the local server).")
@click.option("--token", help="Admin token (default: TB_TOKEN, or asked of a local server's /tokens).")
def build(host: str | None, token: str | None) -> None:
    """Apply changed datafiles to a running embedded server, without a restart."""
    host, token = _host_and_token(host, token)
    try:
        response = requests.post(f"{host}/v0/build", headers={"Authorization": f"Bearer {token}"}, timeout=300)
    except requests.RequestException as exc:
        _fail(f"cannot reach {host}: {exc.__class__.__name__}; is `usage-analytics local` running?")
    body = response.json()
    if response.status_code != 200:
        _fail(f"build refused: {body.get('error')}")
    for line in body["changes"]:
        click.echo(line)


@main.command()
@click.option("--out", default="fixtures", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--rows", type=click.IntRange(min=1), help="Rows per event source (default: the fixture size).")
@click.option("--source", "sources", multiple=True, help="Only this source (repeatable).")
@click.option("--dirty", default=0.0, show_default=True, type=click.FloatRange(0, 1), help="Share of bad rows.")
def generate(out: Path, seed: int, rows: int | None, sources: tuple[str, ...], dirty: float) -> None:
    """Write seeded NDJSON fixtures, one file per datasource."""
    from .generator import SOURCES
    from .generator import generate as write

    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        _fail(f"unknown source {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    stats = write(out, seed=seed, rows=rows, sources=sources or None, dirty=dirty)
    for info in stats.values():
        click.echo(f"{info['path']}: {info['rows']} rows" + (f" ({info['dirty']} dirty)" if info["dirty"] else ""))


def _send(client, datasource: str, source: str) -> bool:
    from .ingest import read_lines

    failed = Path(f"failed-{datasource}.ndjson")
    totals = client.send(datasource, read_lines(source), failed_path=failed)
    click.echo(f"{datasource}: {totals.summary()}")
    for message in totals.errors[:3]:
        click.echo(f"  error: {message}", err=True)
    return totals.failed == 0


@main.command()
@click.argument("datasource")
@click.argument("source")
@click.option("--host", help="Tinybird API base URL (default: TB_HOST or the local server).")
@click.option("--token", help="Token with append rights (default: TB_TOKEN, or the local server's admin token).")
@click.option("--batch-rows", default=50_000, show_default=True, type=click.IntRange(min=1))
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 16))
def ingest(datasource: str, source: str, host, token, batch_rows: int, concurrency: int) -> None:
    """Send an NDJSON file (or - for stdin) to DATASOURCE through the Events API."""
    from .ingest import EventsClient

    if source != "-" and not Path(source).is_file():
        _fail(f"no such file: {source}")
    client = EventsClient(*_host_and_token(host, token), max_rows=batch_rows, concurrency=concurrency)
    if not _send(client, datasource, source):
        _fail(f"some rows of {source} were not delivered; re-send failed-{datasource}.ndjson")


@main.command()
@click.option("--fixtures", "folder", default="fixtures", show_default=True, type=click.Path(path_type=Path))
@click.option("--host", help="Tinybird API base URL (default: TB_HOST or the local server).")
@click.option("--token", help="Token with append rights (default: TB_TOKEN, or the local server's admin token).")
def load(folder: Path, host, token) -> None:
    """Send every fixtures/<datasource>.ndjson to its datasource."""
    from .ingest import EventsClient

    files = sorted(folder.glob("*.ndjson"))
    if not files:
        _fail(f"no .ndjson files in {folder}")
    client = EventsClient(*_host_and_token(host, token))
    results = [_send(client, path.stem, str(path)) for path in files]
    if not all(results):
        _fail("some rows were not delivered; see the failed-*.ndjson files")


if __name__ == "__main__":
    sys.exit(main())

"""The `usage-analytics` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import click
from dotenv import load_dotenv

from .local.settings import DEFAULTS, ServerSettings

# `requests` is imported inside the commands that call a server: a server start (`local`) does not need it
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
@click.option("--fsync", is_flag=True, help="fsync every insert, so acknowledged rows survive power loss too.")
@click.option(
    "--copy-schedules-at-start",
    is_flag=True,
    help="Also run every scheduled copy pipe once at start, then on its COPY_SCHEDULE (tests use it).",
)
@click.option(
    "--max-pending-ingests",
    default=DEFAULTS.max_pending_ingests,
    show_default=True,
    type=click.IntRange(min=1),
    help="Events API requests per datasource, running or waiting, before further ones get a 429 (backpressure).",
)
@click.option(
    "--max-events-body",
    default=DEFAULTS.max_events_body,
    show_default=True,
    type=click.IntRange(min=1),
    help="Bytes of one /v0/events request, sent and inflated (413 beyond).",
)
@click.option(
    "--max-import-bytes",
    default=DEFAULTS.max_import_bytes,
    show_default=True,
    type=click.IntRange(min=1),
    help="Bytes of one Data Sources API file once inflated (413 beyond); it is streamed, never held whole.",
)
@click.option(
    "--query-timeout",
    default=DEFAULTS.max_execution_time,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds any query a request runs may take (TIMEOUT_EXCEEDED beyond, as Tinybird).",
)
@click.option(
    "--query-memory",
    default=DEFAULTS.max_memory_usage,
    show_default=True,
    type=click.IntRange(min=1024 * 1024),
    help="Bytes of memory any query a request runs may use (MEMORY_LIMIT_EXCEEDED beyond).",
)
@click.option(
    "--max-result-bytes",
    default=DEFAULTS.max_result_bytes,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Bytes of one endpoint or /v0/sql answer.",
)
@click.option(
    "--limit",
    "limits",
    multiple=True,
    metavar="NAME=VALUE",
    help="Any other limit of ServerSettings (README, Limits), e.g. --limit max_line_bytes=1048576; repeatable.",
)
@click.option(
    "--expose-tokens/--no-expose-tokens",
    default=None,
    help="Answer GET /tokens (the admin tokens, as Tinybird Local does) to anyone. "
    "Default: only when --host is a loopback address, and only to requests addressed to a loopback name.",
)
@click.option(
    "--dashboard",
    "dashboard_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder served at /dashboard/ (default: the project's dashboard/ folder, when it has one).",
)
def local(
    project_dir: Path,
    data_dir: Path,
    host: str,
    port: int,
    fsync: bool,
    copy_schedules_at_start: bool,
    max_pending_ingests: int,
    max_events_body: int,
    max_import_bytes: int,
    query_timeout: float,
    query_memory: int,
    max_result_bytes: int,
    limits: tuple[str, ...],
    expose_tokens: bool | None,
    dashboard_dir: Path | None,
) -> None:
    """Serve the project's datasources and endpoints with Tinybird's API, on chDB (no Docker)."""
    from .local import BuildError, ProjectError, serve
    from .local.engine import DataDirLocked, EngineError

    flags = {
        "fsync": fsync,
        "copy_schedules_at_start": copy_schedules_at_start,
        "max_pending_ingests": max_pending_ingests,
        "max_events_body": max_events_body,
        "max_import_bytes": max_import_bytes,
        "max_execution_time": query_timeout,
        "max_memory_usage": query_memory,
        "max_result_bytes": max_result_bytes,
        "expose_tokens": expose_tokens,
    }
    settings = ServerSettings(**{**flags, **_limits(limits)})
    dashboard_dir = dashboard_dir or project_dir / "dashboard"
    static = {"/dashboard": dashboard_dir} if dashboard_dir.is_dir() else {}
    try:
        serve(
            project_dir,
            data_dir,
            host,
            port,
            echo=lambda line: click.echo(line, err=False),
            settings=settings,
            static=static,
        )
    except (ProjectError, BuildError, DataDirLocked) as exc:
        _fail(str(exc))
    except EngineError as exc:
        _fail(f"the engine failed on data dir {data_dir}: {exc}")
    except OSError as exc:
        _fail(f"cannot use data dir {data_dir}: {exc.strerror or exc}")


def _limits(pairs: tuple[str, ...]) -> dict[str, int | float]:
    """`NAME=VALUE` pairs as ServerSettings numbers; a wrong name or value stops with a message naming it."""
    kinds = {"int": int, "float": float}
    numeric = {f.name: kinds[f.type] for f in fields(ServerSettings) if f.type in kinds}
    out: dict[str, int | float] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        if name not in numeric:
            _fail(f"--limit {pair}: unknown limit {name!r}; one of {', '.join(sorted(numeric))}")
        try:
            value = numeric[name](text)
        except ValueError:
            _fail(f"--limit {pair}: {text!r} is not a{'n integer' if numeric[name] is int else ' number'}")
        if value <= 0:
            _fail(f"--limit {pair}: must be positive")
        out[name] = value
    return out


def _host_and_token(host: str | None, token: str | None) -> tuple[str, str]:
    import requests

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
    import requests

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
@click.option("--project-dir", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--scale", type=click.Choice(["small", "medium", "large"]), default="large", show_default=True)
@click.option("--quick", is_flag=True, help="A smoke run on tiny data with few calls (what the test suite runs).")
@click.option("--out", default="bench-results", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--cache-dir", default=".bench-cache", show_default=True, type=click.Path(path_type=Path))
@click.option("--peers/--no-peers", default=True, show_default=True, help="Also run DuckDB and PostgreSQL.")
@click.option(
    "--record/--no-record",
    default=None,
    help="Write the run into the project's BENCHMARKS.md (latest run and history row) and its plots into "
    "docs/bench (default: unless --quick).",
)
def bench(
    project_dir: Path, scale: str, quick: bool, out: Path, cache_dir: Path, peers: bool, record: bool | None
) -> None:
    """Benchmark every figure of issue 18 in one run: cold and cached reads at 1 and 8 clients, restart and memory,
    growth across scales, single-stream ingest against chDB, and DuckDB and PostgreSQL on the same questions."""
    from .bench import report
    from .bench.run import run

    record = not quick if record is None else record
    benchmarks_md = project_dir / "BENCHMARKS.md"
    if record and not benchmarks_md.is_file():
        _fail(f"--record: no {benchmarks_md}")
    command = "usage-analytics bench " + ("--quick" if quick else f"--scale {scale}")
    try:
        results = run(project_dir, scale, quick, cache_dir, peers=peers)
    except RuntimeError as exc:
        _fail(f"benchmark stopped: {exc}")
    name = results["scale"]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))
    root = project_dir if record else out
    plots = report.plot(results, root / "docs/bench" if record else out, root)
    table = report.markdown(results, command, plots)
    (out / f"{name}.md").write_text(table)
    if record:
        report.record(benchmarks_md, results, table)
    click.echo(table)
    click.echo(f"results: {out / f'{name}.json'}")


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


def _pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
    """NAME=VALUE options as a dict; a malformed one is a one-line error naming the option."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"bad {option} {item!r}: use NAME=VALUE")
        pairs[key] = value
    return pairs


def _table(meta: list[dict], rows: list[dict]) -> str:
    names = [m["name"] for m in meta]
    cells = [[("" if r[n] is None else str(r[n])) for n in names] for r in rows]
    widths = [max([len(n), *(len(c[i]) for c in cells)]) for i, n in enumerate(names)]
    numeric = [m["type"].removeprefix("Nullable(").startswith(("Int", "UInt", "Float", "Decimal")) for m in meta]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(names), rule, *(line(c) for c in cells), f"({len(rows)} rows)"])


@main.command()
@click.argument("endpoint")
@click.option("--param", "-p", "params", multiple=True, help="A parameter as NAME=VALUE (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--host", help="Tinybird API base URL (default: TB_HOST or the local server).")
@click.option("--token", help="Token that may read the endpoint (default: TB_TOKEN or the local admin token).")
def query(endpoint: str, params: tuple[str, ...], fmt: str, host, token) -> None:
    """Print an endpoint's result: a table, JSON or CSV."""
    import requests

    values = _pairs(params, "--param")
    host, token = _host_and_token(host, token)
    ext = "csv" if fmt == "csv" else "json"
    try:
        response = requests.get(
            f"{host}/v0/pipes/{endpoint}.{ext}",
            params=values,
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
    except requests.RequestException as exc:
        _fail(f"cannot reach {host}: {exc.__class__.__name__}")
    if response.status_code != 200:
        try:
            message = response.json()["error"]
        except (ValueError, KeyError):
            message = response.text[:300]
        _fail(f"{endpoint}: HTTP {response.status_code}: {message}")
    if fmt == "table":
        body = response.json()
        click.echo(_table(body["meta"], body["data"]))
    else:
        click.echo(response.text.rstrip("\n"))


DATAFILE_FOLDERS = ("datasources", "pipes", "endpoints")


def _run(args: list[str], **kwargs) -> int:
    click.echo("$ " + " ".join(args), err=True)
    return subprocess.run(args, **kwargs).returncode


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--cloud", "where", flag_value="--cloud", default=True, help="Deploy to Tinybird Cloud (default).")
@click.option("--local", "where", flag_value="--local", help="Deploy to Tinybird Local.")
@click.option("--host", help="Tinybird API host, passed to tb.")
@click.option("--token", help="Workspace admin token, passed to tb.")
@click.option("--dry-run", is_flag=True, help="Run the checks and print the tb command; deploy nothing.")
@click.argument("deploy_args", nargs=-1, type=click.UNPROCESSED)
def deploy(where: str, host, token, dry_run: bool, deploy_args: tuple[str, ...]) -> None:
    """Check the project (tb fmt, the offline test suite), then `tb deploy`; extra arguments go to tb deploy."""
    tb = str(Path(sys.executable).parent / "tb")
    files = sorted(str(p) for folder in DATAFILE_FOLDERS for p in Path(folder).glob("*.*"))
    if not files:
        _fail("no datafiles here: run deploy from the project folder")
    if _run([tb, "fmt", "--diff", *files], capture_output=True) != 0:
        _fail("some datafiles are not in `tb fmt` form; run `make fmt` and review the change")
    offline = {k: v for k, v in os.environ.items() if k not in ("TB_HOST", "TB_TOKEN")}
    if _run([sys.executable, "-m", "pytest", "-q", "-m", "not slow"], env=offline) != 0:
        _fail("the offline test suite fails; not deploying")
    command = [tb, where, *(["--host", host] if host else []), *(["--token", token] if token else [])]
    command += ["deploy", *deploy_args]
    if dry_run:
        click.echo(" ".join(a if a != token else "***" for a in command))
        return
    if _run(command) != 0:
        _fail("tb deploy failed")


@main.group()
def token() -> None:
    """List the workspace's tokens, show one, or mint a JWT for a dashboard."""


def _tokens(host: str | None, admin: str | None) -> list[dict]:
    import requests

    host, admin = _host_and_token(host, admin)
    try:
        response = requests.get(f"{host}/v0/tokens", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    except requests.RequestException as exc:
        _fail(f"cannot reach {host}: {exc.__class__.__name__}")
    if response.status_code != 200:
        _fail(f"{host} refused: {response.json().get('error')}")
    return response.json()["tokens"]


@token.command("ls")
@click.option("--host")
@click.option("--token", "admin")
def token_ls(host, admin) -> None:
    """Every token: name and scopes."""
    for item in _tokens(host, admin):
        scopes = ", ".join(f"{s['type']}:{s['resource']}" if "resource" in s else s["type"] for s in item["scopes"])
        click.echo(f"{item['name']}: {scopes}")


@token.command("show")
@click.argument("name")
@click.option("--host")
@click.option("--token", "admin")
def token_show(name: str, host, admin) -> None:
    """Print the value of the token called NAME."""
    found = [t for t in _tokens(host, admin) if t["name"] == name]
    if not found:
        _fail(f"no token named {name}")
    click.echo(found[0]["token"])


def _duration(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if not text or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        _fail(f"bad --ttl {text!r}: use a number and a unit, e.g. 30m, 1h, 7d")
    return int(text[:-1]) * units[text[-1]]


@token.command("jwt")
@click.option("--pipe", "pipes", multiple=True, required=True, help="Endpoint the JWT may read (repeatable).")
@click.option("--fixed", multiple=True, help="A parameter the holder cannot change, as NAME=VALUE (repeatable).")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 30m, 1h, 7d...")
@click.option("--name", default="dashboard", show_default=True)
@click.option("--rps", type=click.IntRange(min=1), help="Requests per second allowed.")
@click.option("--host")
@click.option("--token", "admin")
def token_jwt(pipes, fixed, ttl: str, name: str, rps, host, admin) -> None:
    """Mint a JWT signed with the workspace admin token (as Tinybird's JWTs are)."""
    import jwt
    import requests

    host, admin = _host_and_token(host, admin)
    fixed_params = _pairs(fixed, "--fixed")
    workspace = requests.get(f"{host}/v0/workspace", headers={"Authorization": f"Bearer {admin}"}, timeout=10)
    if workspace.status_code != 200:
        _fail(f"{host} refused: {workspace.json().get('error')}")
    claims = {
        "workspace_id": workspace.json()["id"],
        "name": name,
        "exp": int(time.time()) + _duration(ttl),
        "scopes": [{"type": "PIPES:READ", "resource": p, "fixed_params": fixed_params} for p in pipes],
    }
    if rps:
        claims["limits"] = {"rps": rps}
    click.echo(jwt.encode(claims, admin, algorithm="HS256"))


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

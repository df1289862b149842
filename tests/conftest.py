"""The target every test talks to: the embedded server by default, or TB_HOST/TB_TOKEN's Tinybird.

The embedded server is started the way `make run` starts it (`usage-analytics local`), as its own
process on a free port with a temporary data dir; it builds the project and loads fixtures/, as
`tb build` does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import tbfork

from usage_analytics.local.launcher import ServerProcess as Launcher
from usage_analytics.local.launcher import free_port  # noqa: F401 - tests import it from here

TESTS_DIR = Path(__file__).parent
ROOT = TESTS_DIR.parent
sys.path.insert(0, str(TESTS_DIR))
CLI = str(Path(sys.executable).parent / "usage-analytics")
# The suite starts a few hundred Python processes (servers, our CLI, `tb`): let them keep their bytecode (in the
# ignored __pycache__ folders) instead of compiling our package and parts of tinybird's again in every one, which a
# machine's PYTHONDONTWRITEBYTECODE=1 would make them do (about 10% of the suite's CPU).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


class Target:
    """A Tinybird API: base URL and admin token, with the calls the tests make."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = requests.Session()

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def auth(self, token: str | None = None) -> dict:
        return {"Authorization": f"Bearer {token or self.token}"}

    def pipe(self, name: str, params: dict | None = None, fmt: str = "json", token: str | None = None):
        return self.http.get(self.url(f"/v0/pipes/{name}.{fmt}"), params=params or {}, headers=self.auth(token))

    def data(self, name: str, params: dict | None = None) -> list[dict]:
        response = self.pipe(name, params)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def send(self, datasource: str, rows: list, wait: bool = True, **kwargs):
        body = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()
        params = {"name": datasource, "wait": "true" if wait else "false"}
        return self.http.post(self.url("/v0/events"), params=params, data=body, headers=self.auth(), **kwargs)

    def sql(self, q: str) -> list[dict]:
        response = self.http.get(self.url("/v0/sql"), params={"q": f"{q} FORMAT JSON"}, headers=self.auth())
        assert response.status_code == 200, response.text
        return response.json()["data"]


def count(target: Target, table: str, where: str = "1") -> int:
    """Rows of `table` (a datasource, its quarantine or a roll-up) matching `where`, asked through /v0/sql."""
    return int(target.sql(f"SELECT count() AS n FROM {table} WHERE {where}")[0]["n"])


def token_values(target: Target) -> dict[str, str]:
    """Every token of the workspace by name (`analyst`, `ingest`, ...), from /v0/tokens with the admin token."""
    listed = target.http.get(target.url("/v0/tokens"), headers=target.auth()).json()["tokens"]
    return {t["name"]: t["token"] for t in listed}


def emptied(target: Target, datasource: str = "events") -> Target:
    """`target` with `datasource` and its quarantine truncated: a module's tests can share one server and still
    each count exactly the rows it sent."""
    answer = target.http.post(target.url(f"/v0/datasources/{datasource}/truncate"), headers=target.auth())
    assert answer.status_code in (200, 204), answer.text
    left = f"(SELECT count() FROM {datasource}) + (SELECT count() FROM {datasource}_quarantine)"
    assert target.sql(f"SELECT {left} AS n") == [{"n": 0}]
    return target


def post_file(target: Target, params: dict, field: str, filename: str, content: bytes, token: str | None = None):
    """A file sent to the Data Sources API (`POST /v0/datasources`) as the multipart field `field`."""
    return target.http.post(
        target.url("/v0/datasources"),
        params=params,
        files={field: (filename, content)},
        headers=target.auth(token),
    )


def write_files(folder: Path, files: dict[str, str]) -> Path:
    """A project written by a test: each file's text (indented in the test) at its path under `folder`."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def readme_section(name: str) -> str:
    """The README's text between its `<!-- name ... -->` and `<!-- /name -->` markers: what a test runs as written."""
    return (ROOT / "README.md").read_text().split(f"<!-- {name}")[1].split(f"<!-- /{name} -->")[0]


def readme_block(name: str, fence: str = "sh") -> str:
    """The ```fence code block inside the README's `name` section."""
    return readme_section(name).split(f"```{fence}")[1].split("```")[0]


def run_script(script: str, target: Target, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """A shell script from the docs, with TB_HOST and TB_TOKEN set to `target`, as the README sets them."""
    env = {**os.environ, "TB_HOST": target.base_url, "TB_TOKEN": target.token}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60, cwd=cwd)


def run_cli(
    target: Target | None, *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """`usage-analytics ARGS`, pointed at `target` when one is given, as a user runs it."""
    where = ["--host", target.base_url, "--token", target.token] if target else []
    return subprocess.run([CLI, *args, *where], capture_output=True, text=True, cwd=cwd, timeout=timeout)


class ServerProcess(Launcher):
    """The library's launcher (usage_analytics.local.launcher); start() answers a Target."""

    client = Target


def remote() -> tuple[str, str] | None:
    host, token = os.environ.get("TB_HOST"), os.environ.get("TB_TOKEN")
    return (host, token) if host and token else None


DEVIATION_KINDS = ("stricter", "looser", "different")


# The modules that take longest, started first (`make test` runs pytest-xdist with --no-loadscope-reorder, which keeps
# this order instead of putting the modules with the most tests first), so both workers end together instead of one
# starting a long module while the other has nothing left to do.
LONGEST_FIRST = (
    "test_tb_local.py",
    "test_tb_deploy.py",
    "test_dashboard_browser.py",
    "test_readme.py",
    "test_tb_cli.py",
    "test_durability.py",
    "test_hostile_input.py",
    "test_embedded_server.py",
    "test_conditions_and_swaps.py",
    "test_datasources_api.py",
    "test_schemathesis.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's own order is kept
    for item in items:
        for marker in item.iter_markers("deviation"):
            kind, reason = marker.args
            assert kind in DEVIATION_KINDS and reason, (
                f"{item.nodeid}: deviation(kind, reason) with kind in {DEVIATION_KINDS}"
            )
    if remote():
        skip = pytest.mark.skip(reason="exercises the embedded server itself; TB_HOST points elsewhere")
        for item in items:
            if "embedded" in item.keywords:
                item.add_marker(skip)
            elif (marker := item.get_closest_marker("deviation")) is not None:
                kind, reason = marker.args
                item.add_marker(pytest.mark.xfail(strict=False, reason=f"embedded server is {kind}: {reason}"))


def load_fixtures(target: Target) -> None:
    """Empty every datasource of the project on a real Tinybird, then send fixtures/ through the Events API."""
    from usage_analytics.ingest import EventsClient, read_lines
    from usage_analytics.local import load_project

    hostname = urlsplit(target.base_url).hostname
    if hostname not in ("localhost", "127.0.0.1", "::1") and os.environ.get("TB_ALLOW_DESTRUCTIVE") != "1":
        pytest.exit(f"refusing to truncate the datasources of {target.base_url}: set TB_ALLOW_DESTRUCTIVE=1", 2)
    project = load_project(ROOT)
    for name in project.datasources:
        url = target.url(f"/v0/datasources/{name}/truncate")
        response = target.http.post(url, headers=target.auth(), timeout=120)
        assert response.status_code in (200, 204), f"truncate {name}: {response.text}"
    client = EventsClient(target.base_url, target.token)
    for name in project.datasources:
        fixture = project.fixture_for(name)
        if fixture is not None:
            totals = client.send(name, read_lines(str(fixture)))
            assert totals.failed == 0, f"{name}: {totals.summary()}"


@pytest.fixture(scope="session")
def target(tmp_path_factory):
    if remote():
        tinybird = Target(*remote())
        load_fixtures(tinybird)
        yield tinybird
        return
    server = ServerProcess(ROOT, tmp_path_factory.mktemp("session") / "data")
    yield server.start()
    server.stop()


@pytest.fixture
def start_server(tmp_path):
    """Start servers on projects written by a test; all are stopped when the test ends."""
    servers: list[ServerProcess] = []

    def start(project_dir: Path, data_dir: Path | None = None) -> tuple[ServerProcess, Target]:
        server = ServerProcess(project_dir, data_dir or tmp_path / f"data{len(servers)}")
        servers.append(server)
        return server, server.start()

    yield start
    for server in servers:
        server.stop()


EVENT_COLUMNS = ("event_id", "user_id", "session_id", "event_type", "event_name", "page", "feature", "properties")


def event(**values) -> dict:
    """A complete `events` row: every column present, as Tinybird requires of non-nullable columns."""
    return {**{c: "" for c in EVENT_COLUMNS}, "properties": "{}", "timestamp": "2025-05-01 10:00:00", **values}


# feature_usage over the raw events alone (the project's pipe reads whole days from a roll-up, which a truncate
# leaves as it is, as in Tinybird): a slice's tests empty `events` between them and count what they sent
SLICE_FEATURE_USAGE = """TOKEN "analyst" READ

NODE endpoint
SQL >
    %
    SELECT feature, count() AS usage_count, uniqExact(user_id) AS unique_users
    FROM events
    WHERE
        1 = 1
        {% if defined(start_date) %} AND timestamp >= {{ DateTime(start_date) }} {% end %}
        {% if defined(end_date) %} AND timestamp <= {{ DateTime(end_date) }} {% end %}
        {% if defined(feature) %} AND feature = {{ String(feature) }}
        {% else %} AND feature != ''
        {% end %}
    GROUP BY feature
    ORDER BY usage_count DESC, feature ASC

TYPE ENDPOINT
"""


def slice_project(path: Path) -> Path:
    """A project of just the `events` datasource and a `feature_usage` endpoint over its raw rows, no fixtures."""
    (path / "datasources").mkdir(parents=True)
    (path / "endpoints").mkdir()
    shutil.copy(ROOT / "datasources/events.datasource", path / "datasources")
    (path / "endpoints/feature_usage.pipe").write_text(SLICE_FEATURE_USAGE)
    return path


def run_tb(target: Target, cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Tinybird's CLI as a user runs it from a project against Tinybird Local: TB_LOCAL_PORT names the server; a
    HOME of its own (no login), no version check, telemetry nowhere, and no other variable (TB_HOST/TB_TOKEN would
    point it elsewhere, a CI's branch name would rename the workspace it looks for). Each call is a process of its
    own, forked from one that imported the CLI once (tests/tbfork.py)."""
    home = cwd.parent / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TB_LOCAL_PORT": str(urlsplit(target.base_url).port),
        "TB_VERSION_WARNING": "0",
        "TB_CLI_TELEMETRY_OPTOUT": "1",
        "TB_CLI_TELEMETRY_HOST": "http://127.0.0.1:9",
    }
    return tbfork.run(["--no-version-warning", *args], cwd, env, timeout)


def copy_project(folder: Path, name: str | None = None, yaml_cases: bool = True) -> Path:
    """The project as a user has it, without .git: datafiles, fixtures, tb test cases and .tinyb (`name` renames
    the workspace the CLI looks for)."""
    for part in ("datasources", "pipes", "endpoints", "fixtures"):
        shutil.copytree(ROOT / part, folder / part)
    if yaml_cases:
        (folder / "tests").mkdir()
        for path in (ROOT / "tests").glob("*.yaml"):
            shutil.copy(path, folder / "tests")
    tinyb = json.loads((ROOT / ".tinyb").read_text())
    (folder / ".tinyb").write_text(json.dumps({**tinyb, "name": name or tinyb["name"]}))
    return folder

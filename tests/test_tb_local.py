"""`tb --local build` and `tb --local test run`, Tinybird's own CLI (5.0.3, unmodified), against the embedded server.

The CLI uploads the datafiles to `POST /v1/build` and reads back what changed; after a build with changes it loads
fixtures/ into the datasources that are empty (TB-LOCAL-API.md §1). `tb test run` does the same into a fresh
`Tinybird_Local_Test_<uuid>` workspace, then compares every case of tests/*.yaml with the endpoint's `.ndjson`
text (§2; the run of the whole suite is tests/test_readme.py's, as the README gives it). It runs from a copy of the
project without .git (so no git branch renames its workspace), with a HOME of its own, no version check and
telemetry that goes nowhere.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, ServerProcess, Target, copy_project, run_tb

pytestmark = pytest.mark.embedded


def tb(target: Target, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`tb --local ARGS` in `cwd`, its output as one text (the CLI prints some errors on stderr)."""
    done = run_tb(target, cwd, "--local", *args)
    done.stdout += done.stderr
    return done


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server on a copy of the project: its first workspace, `usage_analytics`, built with fixtures at start."""
    base = tmp_path_factory.mktemp("tb_local")
    process = ServerProcess(copy_project(base / "project"), base / "data")
    target = process.start()
    yield process, target
    process.stop()


def workspace(target: Target, name: str) -> Target:
    """The same server, as the workspace of that name (its own token)."""
    listed = target.http.get(target.url("/v1/user/workspaces"), headers=target.auth()).json()["workspaces"]
    return Target(target.base_url, next(ws["token"] for ws in listed if ws["name"] == name))


def row_counts(target: Target) -> dict[str, int]:
    listed = target.http.get(target.url("/v0/datasources"), headers=target.auth()).json()["datasources"]
    counts = {}
    for ds in listed:
        # FINAL where rows are replaced or combined: their count would otherwise depend on when parts merged
        final = "" if ds["engine"]["engine"] == "MergeTree" else " FINAL"
        counts[ds["name"]] = target.sql(f"SELECT count() AS n FROM {ds['name']}{final}")[0]["n"]
    return counts


def fixture_rows(name: str) -> int:
    return len((ROOT / "fixtures" / f"{name}.ndjson").read_text().splitlines())


def test_build_reports_what_changed_and_appends_no_fixture_twice(server, tmp_path):
    _, target = server
    project, before = copy_project(tmp_path / "project"), row_counts(target)
    assert before["events"] == fixture_rows("events")

    unchanged = tb(target, project, "build")  # the server built these very files at start
    assert unchanged.returncode == 0 and "No changes. Build skipped." in unchanged.stdout, unchanged.stdout

    pipe = project / "endpoints/feature_usage.pipe"
    original = pipe.read_text()
    pipe.write_text(original.replace("SELECT", "SELECT ", 1))  # the same query in other words: a changed pipe
    changed = tb(target, project, "build")
    assert changed.returncode == 0 and "✓ endpoints/feature_usage.pipe changed" in changed.stdout, changed.stdout
    assert "Build completed" in changed.stdout

    pipe.write_text(original)
    assert "✓ endpoints/feature_usage.pipe changed" in tb(target, project, "build").stdout
    again = tb(target, project, "build")
    assert again.returncode == 0 and "No changes. Build skipped." in again.stdout, again.stdout
    assert row_counts(target) == before  # a build with changes appended fixtures only into empty datasources


def test_a_datasource_and_a_pipe_no_longer_sent_are_deleted_and_come_back_with_their_fixture(server, tmp_path):
    _, target = server
    project, before = copy_project(tmp_path / "project"), row_counts(target)
    kept = {
        path: path.read_text()
        for path in (project / "datasources/tenant_rate_limits.datasource", project / "endpoints/rate_limit_usage.pipe")
    }
    for path in kept:
        path.unlink()
    removed = tb(target, project, "build")
    assert removed.returncode == 0, removed.stdout
    assert "✓ tenant_rate_limits.datasource deleted" in removed.stdout
    assert "✓ rate_limit_usage.pipe deleted" in removed.stdout
    assert target.http.get(target.url("/v0/datasources/tenant_rate_limits"), headers=target.auth()).status_code == 404
    assert target.pipe("rate_limit_usage").status_code == 404
    assert not target.sql("SELECT name FROM system.tables WHERE database = 'tb' AND name LIKE 'tenant_rate_limits%'")

    for path, text in kept.items():
        path.write_text(text)
    back = tb(target, project, "build")
    assert back.returncode == 0, back.stdout
    assert "✓ datasources/tenant_rate_limits.datasource created" in back.stdout
    assert "✓ endpoints/rate_limit_usage.pipe created" in back.stdout
    assert row_counts(target) == before  # the CLI appended the fixture into the new, empty datasource alone
    assert target.pipe("rate_limit_usage").status_code == 200


BROKEN = {
    "unparsable": ("datasources/broken.datasource", None, "Unknown data type family: Strin"),
    "lossy": ("datasources/events.datasource", ("`timestamp` DateTime", "`timestamp` Date"), "rows it holds"),
}


@pytest.mark.parametrize("kind", BROKEN)
def test_a_refused_build_names_the_file_and_changes_nothing(server, tmp_path, kind):
    _, target = server
    project, before = copy_project(tmp_path / "project"), row_counts(target)
    filename, change, message = BROKEN[kind]
    path = project / filename
    if change is None:
        path.write_text("SCHEMA >\n    `a` Strin\n")
    else:
        path.write_text(path.read_text().replace(*change))

    refused = tb(target, project, "build")
    assert refused.returncode != 0 and "✗ Build failed" in refused.stdout, refused.stdout
    assert f"{filename}\n" in refused.stdout and message in refused.stdout
    assert row_counts(target) == before
    pristine = tb(target, copy_project(tmp_path / "pristine"), "build")
    assert "No changes. Build skipped." in pristine.stdout, pristine.stdout  # nor the folder it builds from


def test_test_run_fails_on_a_wrong_expected_result(server, tmp_path):
    _, target = server
    project = copy_project(tmp_path / "project")
    cases_file = project / "tests/feature_usage.yaml"
    cases = yaml.safe_load(cases_file.read_text())
    cases[0]["expected_result"] += '{"feature":"nobody","usage_count":1,"unique_users":1}\n'
    cases_file.write_text(yaml.safe_dump(cases, sort_keys=False))
    done = tb(target, project, "test", "run", "feature_usage")  # that file's cases alone
    assert done.returncode != 0, done.stdout
    assert f"✗ {cases[0]['name']} failed" in done.stdout
    assert re.findall(r"^\* (\S+\.yaml)$", done.stdout, re.MULTILINE) == ["feature_usage.yaml"]


def test_a_workspace_built_by_tb_build_is_rebuilt_from_its_datafiles_after_a_restart(server, tmp_path):
    process, target = server
    project = copy_project(tmp_path / "project", name="tb_local_restart")
    first = tb(target, project, "build")  # the CLI creates the workspace, builds it and appends the fixtures
    assert first.returncode == 0 and "✓ datasources/events.datasource created" in first.stdout, first.stdout
    built = row_counts(workspace(target, "tb_local_restart"))
    assert built["events"] == fixture_rows("events") and built["api_logs"] == fixture_rows("api_logs")

    process.stop()
    target = process.start()
    assert row_counts(workspace(target, "tb_local_restart")) == built
    again = tb(target, project, "build")
    assert again.returncode == 0 and "No changes. Build skipped." in again.stdout, again.stdout

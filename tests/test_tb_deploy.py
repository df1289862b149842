"""`tb --local deploy` and `tb --local deployment create|ls|promote|discard`: Tinybird's own CLI (5.0.3, unmodified)
against the embedded server (docs: TB-LOCAL-API.md §3 and §7).

One server for the module, on a copy of the project (without .git, so no git branch renames the CLI's workspace);
each test changes the copy's datafiles as a user would and drives the CLI from it. The tests run in order, each
leaving the copy and the live deployment in step for the next.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import requests
from conftest import ROOT, ServerProcess, event, run_tb, slice_project

pytestmark = pytest.mark.embedded

PROBE = "deploy_probe"  # the endpoint a deployment adds
PROBE_PIPE = """DESCRIPTION >
    Added by a deployment: the rate limits and their plan.

NODE endpoint
DESCRIPTION >
    How many limits there are, and one plan.

SQL >
    SELECT count() AS n, any(plan) AS plan FROM tenant_rate_limits

TYPE ENDPOINT
"""
NOTES = """DESCRIPTION >
    Added by a deployment, deleted by a later one.

SCHEMA >
    `note` String `json:$.note`
"""


def tb(server, project: Path, *args: str) -> subprocess.CompletedProcess:
    return run_tb(server, project, "--local", *args, timeout=120)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"{done.args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def deploy(tmp_path_factory):
    """The server, and the copy of the project it was started on and the CLI deploys from."""
    project = tmp_path_factory.mktemp("deploy") / "project"
    for folder in ("datasources", "endpoints", "pipes", "fixtures"):
        shutil.copytree(ROOT / folder, project / folder)
    shutil.copy(ROOT / ".tinyb", project)
    server = ServerProcess(project, project.parent / "data")
    holder = {"server": server, "target": server.start(), "project": project}
    yield holder
    server.stop()


def deployments(target, include_deleted: bool = False) -> list[dict]:
    params = {"include_deleted": "true"} if include_deleted else {}
    answer = target.http.get(target.url("/v1/deployments"), params=params, headers=target.auth())
    assert answer.status_code == 200, answer.text
    return answer.json()["deployments"]


def counts(target) -> dict[str, int]:
    """Rows per table of the live database (quarantines too); FINAL where rows are combined (roll-ups), whose
    stored count would otherwise change whenever a background merge ran."""
    tables = target.sql(
        "SELECT name, engine, total_rows FROM system.tables WHERE database = 'tb' AND engine LIKE '%Tree'"
    )
    counted = {}
    for table in tables:
        if table["engine"] == "MergeTree":
            counted[table["name"]] = int(table["total_rows"])
        else:
            counted[table["name"]] = int(target.sql(f"SELECT count() AS n FROM {table['name']} FINAL")[0]["n"])
    return counted


def others(rows: dict[str, int], *names: str) -> dict[str, int]:
    """`rows` without these datasources and their quarantines."""
    return {k: v for k, v in rows.items() if k.removesuffix("_quarantine") not in names}


def staging_databases(target) -> list[str]:
    return [r["name"] for r in target.sql("SELECT name FROM system.databases WHERE startsWith(name, 'tb__d')")]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def test_check_validates_and_creates_nothing(deploy):
    target, project = deploy["target"], deploy["project"]
    (project / "endpoints" / f"{PROBE}.pipe").write_text(PROBE_PIPE.replace("any(plan) AS plan", "1 AS plan"))
    printed = ok(tb(target, project, "deploy", "--check"))
    assert "✓ Deployment is valid" in printed and f"endpoints/{PROBE}.pipe" in printed
    assert [d["id"] for d in deployments(target)] == ["0"] and staging_databases(target) == []
    assert target.pipe(PROBE).status_code == 404

    (project / "endpoints" / f"{PROBE}.pipe").write_text("NODE endpoint\nSQL >\n")  # a node without SQL
    refused = tb(target, project, "deploy", "--check")
    assert refused.returncode == 1 and f"endpoints/{PROBE}.pipe" in refused.stdout, refused.stdout
    assert "Deployment is not valid" in refused.stdout
    (project / "endpoints" / f"{PROBE}.pipe").unlink()


def test_a_deploy_without_changes_is_not_made(deploy):
    target, project = deploy["target"], deploy["project"]
    assert "Not deploying. No changes." in ok(tb(target, project, "deploy"))
    assert [d["id"] for d in deployments(target)] == ["0"]


def test_a_change_goes_live_with_the_rows_kept_and_writes_and_reads_going_on(deploy):
    target, project = deploy["target"], deploy["project"]
    before = counts(target)
    (project / "endpoints" / f"{PROBE}.pipe").write_text(PROBE_PIPE)
    (project / "datasources" / "deploy_notes.datasource").write_text(NOTES)
    edit(
        project / "datasources" / "tenant_rate_limits.datasource",
        "`updated_at` DateTime `json:$.updated_at`\n",
        "`updated_at` DateTime `json:$.updated_at`,\n    `plan` String `json:$.plan` DEFAULT 'free'\n",
    )
    sent, failures, done = [], [], threading.Event()

    def write() -> None:  # appends wait while the promotion holds them; none may be lost
        while not done.is_set():
            batch = [event(event_id=f"during-{len(sent)}-{i}", feature="during_deploy") for i in range(20)]
            answer = target.send("events", batch)
            (sent if answer.status_code == 200 else failures).append(answer.status_code)

    def read() -> None:  # a read sees the old deployment or the new one, never half of each
        while not done.is_set():
            answer = target.pipe("feature_usage")
            if answer.status_code != 200:
                failures.append(answer.text)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    try:
        printed = ok(tb(target, project, "deploy"))
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert "✓ Deployment #1 is live!" in printed, printed
    assert "tenant_rate_limits" in printed and "From live deployment using Forward Query" in printed
    assert failures == [] and sent
    after = counts(target)
    assert after["events"] == before["events"] + 20 * len(sent)
    fed = ("events", "events_daily_users_mv", "events_weekly_users_mv", "events_daily_features_mv")  # appended to
    assert others(after, *fed) == {**others(before, *fed), "deploy_notes": 0, "deploy_notes_quarantine": 0}
    assert target.data(PROBE) == [{"n": before["tenant_rate_limits"], "plan": "free"}]
    # each roll-up of events holds every row once: those carried over, and those appended before and after the swap
    assert target.sql("SELECT sum(events) AS n FROM events_weekly_users_mv") == [{"n": after["events"]}]
    assert target.sql("SELECT sum(events) AS n FROM events_daily_features_mv") == [{"n": after["events"]}]
    daily = target.sql("SELECT uniqExactMerge(users) AS n FROM events_daily_users_mv")
    assert daily == target.sql("SELECT uniqExact(user_id) AS n FROM events")
    live = deployments(target)
    assert [(d["id"], d["status"], d["live"]) for d in live] == [("1", "data_ready", True)]
    assert staging_databases(target) == []


def test_create_lists_the_staging_deployment_after_the_live_one_then_promote(deploy):
    target, project = deploy["target"], deploy["project"]
    edit(project / "endpoints" / f"{PROBE}.pipe", "count() AS n,", "count() AS n, 2 AS version,")
    assert "✓ Deployment is ready" in ok(tb(target, project, "deployment", "create", "--wait"))
    assert [(d["id"], d["status"], d["live"]) for d in deployments(target)] == [
        ("1", "data_ready", True),
        ("2", "data_ready", False),
    ]
    listed = json.loads(ok(tb(target, project, "--output", "json", "deployment", "ls")))["deployments"]
    assert [(d["id"], d["status"]) for d in listed] == [("2", "Staging"), ("1", "Live")]  # as printed: newest first
    assert "version" not in target.data(PROBE)[0]  # staged, not live
    refused = tb(target, project, "deploy")
    assert refused.returncode == 1 and "Deployment 2 is in staging" in refused.stdout

    printed = ok(tb(target, project, "deployment", "promote", "--wait"))
    assert "✓ Old deployment removed" in printed and "✓ Deployment #2 is live!" in printed
    assert target.data(PROBE)[0]["version"] == 2
    assert [d["id"] for d in deployments(target)] == ["2"] and staging_databases(target) == []


def test_discard_removes_the_staging_deployment(deploy):
    target, project = deploy["target"], deploy["project"]
    edit(project / "endpoints" / f"{PROBE}.pipe", "2 AS version", "3 AS version")
    ok(tb(target, project, "deployment", "create"))
    assert staging_databases(target) == ["tb__d3"]
    printed = ok(tb(target, project, "deployment", "discard", "--wait"))
    assert "Discard process successfully completed" in printed
    assert [(d["id"], d["status"]) for d in deployments(target, include_deleted=True)][-2:] == [
        ("2", "data_ready"),
        ("3", "deleted"),
    ]
    assert target.data(PROBE)[0]["version"] == 2 and staging_databases(target) == []
    edit(project / "endpoints" / f"{PROBE}.pipe", "3 AS version", "2 AS version")  # back to what is live


def test_a_destructive_change_is_refused_with_its_reason_unless_allowed(deploy):
    target, project = deploy["target"], deploy["project"]
    before = counts(target)
    (project / "datasources" / "deploy_notes.datasource").unlink()
    edit(
        project / "datasources" / "tenant_rate_limits.datasource",
        "`requests_per_minute` UInt32",
        "`requests_per_minute` UInt64",
    )
    refused = tb(target, project, "deploy")
    assert refused.returncode == 1, refused.stdout
    assert "datasource deploy_notes is deleted" in refused.stdout
    assert f"incompatible with the {before['tenant_rate_limits']} rows" in refused.stdout
    assert refused.stdout.count("--allow-destructive-operations") == 2
    assert counts(target) == before and [d["id"] for d in deployments(target)] == ["2"]

    printed = ok(tb(target, project, "deploy", "--allow-destructive-operations"))
    assert "✓ Deployment #4 is live!" in printed and "WARNING: tenant_rate_limits" in printed
    after = counts(target)
    assert after["tenant_rate_limits"] == 0 and "deploy_notes" not in after
    assert others(after, "tenant_rate_limits") == others(before, "tenant_rate_limits", "deploy_notes")


def test_another_workspace_deploys_apart(deploy, tmp_path):
    """As the CLI deploys from a git branch: the workspace of that name, its own token, its own deployments."""
    target = deploy["target"]
    other = target.http.post(target.url("/v1/workspaces"), params={"name": "feature_branch"}, headers=target.auth())
    assert other.status_code == 200, other.text
    token, folder = other.json()["token"], slice_project(tmp_path / "slice")
    parts = [("context://", ("cli-version", "1.0.0", "text/plain"))] + [
        ("data_project://", (path.relative_to(folder).as_posix(), path.read_text(), "text/plain"))
        for path in sorted(folder.rglob("*.*"))
    ]
    url, auth = target.url("/v1/deploy"), {"Authorization": f"Bearer {token}"}
    answer = requests.post(url, files=parts, params={"auto_promote": "true"}, headers=auth, timeout=60).json()
    assert answer["result"] == "success" and answer["deployment"]["live"], answer
    assert answer["deployment"]["new_datasource_names"] == ["events"]
    assert target.pipe("feature_usage", token=token).json()["data"] == []  # its events: none yet
    assert [d["id"] for d in deployments(target)] == ["4"]  # the first workspace's are its own
    deploy["other"] = token


def test_ids_statuses_and_times_survive_a_restart(deploy):
    server, target, project = deploy["server"], deploy["target"], deploy["project"]
    edit(project / "endpoints" / f"{PROBE}.pipe", "2 AS version", "5 AS version")
    ok(tb(target, project, "deployment", "create"))
    before, rows = deployments(target, include_deleted=True), counts(target)
    server.stop()
    target = deploy["target"] = server.start()
    assert deployments(target, include_deleted=True) == before
    assert [(d["id"], d["status"], d["live"]) for d in before if d["status"] != "deleted"] == [
        ("4", "data_ready", True),
        ("5", "data_ready", False),
    ]
    # (the start builds the project folder, which loads a fixture into an empty datasource, as `tb build` does)
    assert others(counts(target), "tenant_rate_limits") == others(rows, "tenant_rate_limits")
    assert "✓ Deployment #5 is live!" in ok(tb(target, project, "deployment", "promote", "--wait"))
    assert target.data(PROBE)[0]["version"] == 5
    assert "Not deploying. No changes." in ok(tb(target, project, "deploy"))
    assert target.pipe("feature_usage", token=deploy["other"]).status_code == 200  # the other workspace's deployment


def test_a_deployment_that_fails_to_build_is_removed_and_the_live_one_serves_on(deploy):
    target, project = deploy["target"], deploy["project"]
    rows, pipe = counts(target), project / "pipes" / "events_weekly_users.pipe"
    edit(pipe, "user_id, count() AS events", "no_such_column AS user_id, count() AS events")
    failed = tb(target, project, "deploy")
    assert failed.returncode == 1 and "Deployment failed" in failed.stdout
    assert "pipes/events_weekly_users.pipe" in failed.stdout and "no_such_column" in failed.stdout
    last = deployments(target, include_deleted=True)[-1]
    assert (last["id"], last["status"], last["live"]) == ("6", "deleted", False) and last["errors"]
    assert counts(target) == rows and staging_databases(target) == []
    assert target.data(PROBE)[0]["version"] == 5
    edit(pipe, "no_such_column AS user_id, count() AS events", "user_id, count() AS events")


def test_the_deployment_routes_need_the_workspace_admin_token(deploy):
    target = deploy["target"]
    listed = target.http.get(target.url("/v0/tokens"), headers=target.auth()).json()["tokens"]
    tokens = {t["name"]: t["token"] for t in listed}
    url = target.url("/v1/deployments")
    assert requests.get(url, headers=target.auth(tokens["analyst"]), timeout=10).status_code == 403
    assert requests.get(url, timeout=10).status_code == 403
    assert requests.get(f"{url}/99", headers=target.auth(), timeout=10).status_code == 404
    live = next(d["id"] for d in deployments(target) if d["live"])
    refused = requests.delete(f"{url}/{live}", headers=target.auth(), timeout=10)
    assert refused.status_code == 400 and "is live" in refused.json()["error"]
    listed = deployments(target, include_deleted=True)
    assert [int(d["id"]) for d in listed] == sorted(int(d["id"]) for d in listed)  # oldest first
    assert all(json.dumps(d["created_at"]) and d["created_at"] <= d["updated_at"] for d in listed)

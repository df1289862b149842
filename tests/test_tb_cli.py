"""Tinybird's own CLI (`tb` 5.0.3, unmodified) against the embedded server: its read commands and `datasource append`,
and the routes they call (docs: TB-LOCAL-API.md §4), each also checked over plain HTTP.

The CLI runs as `tb --local` does against Tinybird Local: TB_LOCAL_PORT names the server, from a copy of the project
without .git (so no git branch renames its workspace) and with a HOME of its own (no login, so no LLM call); no
version check, and its telemetry goes nowhere.
"""

from __future__ import annotations

import functools
import gzip
import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from conftest import ROOT, ServerProcess, copy_project, count, event, run_tb, slice_project, token_values

from usage_analytics.local import load_project

pytestmark = pytest.mark.embedded

PIPE = "feature_usage"


def tb(target, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    done = run_tb(target, cwd, *args)
    assert done.returncode == 0, f"tb {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The project's datafiles, fixtures and .tinyb (which names the workspace the CLI looks for), without .git."""
    return copy_project(tmp_path_factory.mktemp("cli") / "project", yaml_cases=False)


@pytest.fixture(scope="module")
def writer(tmp_path_factory):
    """A server of its own for what writes: the `events` datasource and the `feature_usage` endpoint, no rows."""
    folder = slice_project(tmp_path_factory.mktemp("writes") / "project")
    (folder / ".tinyb").write_text(json.dumps({"name": "cli_writes"}))
    server = ServerProcess(folder, folder.parent / "data")
    yield server.start(), folder
    server.stop()


@functools.cache
def datafiles():
    """The project as Tinybird's parser reads it: what the server must describe."""
    return load_project(ROOT)


def get(target, path: str, token: str | None = None, **params):
    return target.http.get(target.url(path), params=params, headers=target.auth(token))


# ---- the real CLI ------------------------------------------------------------------------------------------------
def test_tb_local_version_prints_the_servers_version(target, project):
    import chdb

    assert f"(chDB {chdb.__version__})" in tb(target, project, "local", "version").stdout


def test_tb_datasource_ls_prints_rows_size_and_times(target, project):
    listed = json.loads(tb(target, project, "--local", "datasource", "ls", "--format", "json").stdout)["datasources"]
    assert sorted(d["name"] for d in listed) == sorted(datafiles().datasources)
    events = next(d for d in listed if d["name"] == "events")
    described = get(target, "/v0/datasources/events").json()
    assert events["row_count"] == count(target, "events") == described["statistics"]["row_count"]
    assert events["size"] > 0 and described["statistics"]["bytes"] > 0  # (merges in the background change it)
    assert events["created at"] == described["created_at"][:-7] and events["updated at"] == described["updated_at"][:-7]


def test_tb_endpoint_ls_lists_every_endpoint_with_a_url_that_answers(target, project):
    listed = json.loads(tb(target, project, "--local", "--output", "json", "endpoint", "ls").stdout)["pipes"]
    endpoints = datafiles().endpoints
    assert sorted(p["name"] for p in listed) == sorted(endpoints)
    assert all(p["nodes"] == len(endpoints[p["name"]].nodes) for p in listed)
    url = next(p["url"] for p in listed if p["name"] == PIPE)
    assert url.endswith(f"/v0/pipes/{PIPE}.json?token={token_values(target)['analyst']}")  # a token that may read it
    assert requests.get(url, timeout=10).json()["data"] == target.data(PIPE)


def test_tb_endpoint_data_sends_a_long_url_as_a_form_and_its_parameters_count(target, project):
    # past 4096 characters of URL the CLI posts the parameters as a form, which must filter as the URL would
    args = ("--feature", "search_bar", "--padding", "x" * 5000, "--format", "csv")
    printed = tb(target, project, "--local", "endpoint", "data", PIPE, *args).stdout
    assert printed.strip() == target.pipe(PIPE, {"feature": "search_bar"}, fmt="csv").text.strip()
    assert len(printed.strip().splitlines()) == 2  # the header and search_bar's row


def test_tb_sql_reads_the_nodes_of_a_pipeline(target, project):
    query = "SELECT sum(events) AS n FROM whole_days"  # the first node: with no window, every day is whole
    printed = tb(target, project, "--local", "--output", "json", "sql", query, "--pipeline", PIPE).stdout
    assert json.loads(printed)["data"] == [{"n": count(target, "events", "feature != ''")}]


def test_tb_datasource_append_sends_a_file_and_events(writer, tmp_path):
    server, folder = writer
    rows = tmp_path / "rows.ndjson"
    rows.write_text("\n".join(json.dumps(event(event_id=f"cli-{i}", feature="cli_file")) for i in range(3)))
    assert "Rows appended" in tb(server, folder, "--local", "datasource", "append", "events", str(rows)).stdout
    events = "\n".join(json.dumps(event(event_id=f"ev-{i}", feature="cli_events")) for i in range(2))
    printed = tb(server, folder, "--local", "datasource", "append", "events", "--events", events).stdout
    assert "2 rows appended" in printed  # counted from the job's blocks
    assert (
        count(server, "events", "feature = 'cli_file'") == 3 and count(server, "events", "feature = 'cli_events'") == 2
    )
    # CSV (with a header of column names) and Parquet files, their format told by the extension
    table = [event(event_id=f"cli-csv-{i}", feature="cli_csv") for i in range(4)]
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text(",".join(table[0]) + "\n" + "\n".join(",".join(row.values()) for row in table) + "\n")
    assert "Rows appended" in tb(server, folder, "--local", "datasource", "append", "events", str(csv_file)).stdout
    parquet = [event(event_id=f"cli-pq-{i}", feature="cli_parquet") for i in range(5)]
    pq.write_table(pa.Table.from_pylist(parquet), tmp_path / "rows.parquet")
    done = tb(server, folder, "--local", "datasource", "append", "events", str(tmp_path / "rows.parquet"))
    assert "Rows appended" in done.stdout
    assert (
        count(server, "events", "feature = 'cli_csv'") == 4 and count(server, "events", "feature = 'cli_parquet'") == 5
    )


# ---- the routes, over plain HTTP ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "output_type"), [(PIPE, "endpoint"), ("events_daily_users", "materialized")])
def test_a_pipe_object_has_its_nodes_sql_and_types(target, name, output_type):
    pipe = datafiles().pipes[name]
    body = get(target, f"/v0/pipes/{name}").json()
    assert body["name"] == name and body["type"] == output_type
    assert body["endpoint"] == (pipe.output_node.name if output_type == "endpoint" else None)
    assert [(n["name"], n["sql"]) for n in body["nodes"]] == [(n.name, n.sql) for n in pipe.nodes]
    assert [n["node_type"] for n in body["nodes"]] == [n.kind or "standard" for n in pipe.nodes]
    assert body["nodes"][-1]["node_type"] == output_type
    assert datetime.fromisoformat(body["created_at"]) <= datetime.fromisoformat(body["updated_at"])
    assert get(target, f"/v0/pipes/{name}").json() == body  # the same times on every call


def test_a_pipe_object_needs_read_access_and_a_known_name(target):
    analyst = token_values(target)["analyst"]
    assert get(target, f"/v0/pipes/{PIPE}", analyst).status_code == 200
    assert get(target, "/v0/pipes/events_daily_users", analyst).status_code == 403
    assert get(target, "/v0/pipes/no_such_pipe", analyst).status_code == 403  # no hint whether it exists
    assert get(target, "/v0/pipes/no_such_pipe").status_code == 404
    assert get(target, f"/v0/pipes/{PIPE}.xml").status_code == 404
    assert target.http.post(target.url(f"/v0/pipes/{PIPE}"), headers=target.auth()).status_code == 405


def test_the_pipe_list_has_endpoints_times_and_node_objects(target):
    listed = get(target, "/v0/pipes").json()["pipes"]
    assert {p["name"]: p["endpoint"] for p in listed}[PIPE] == "endpoint"
    assert {p["name"]: p["endpoint"] for p in listed}["events_daily_users"] is None
    assert all(set(n) >= {"name", "sql", "node_type"} for p in listed for n in p["nodes"])
    # as `tb endpoint ls` asks: only the fields named, the nodes still there to be counted
    few = get(target, "/v0/pipes", attrs="name,updated_at,endpoint", node_attrs="name").json()["pipes"]
    assert all(set(p) == {"name", "updated_at", "endpoint", "nodes"} for p in few)
    assert all(set(n) == {"name"} for p in few for n in p["nodes"])


def test_datasources_answer_statistics_and_times(target):
    one = get(target, "/v0/datasources/events").json()
    assert one["statistics"]["row_count"] == one["stats"]["row_count"] == count(target, "events")
    assert one["statistics"]["bytes"] > 0 and one["type"] == "ndjson"
    assert datetime.fromisoformat(one["created_at"]) <= datetime.fromisoformat(one["updated_at"])
    listed = next(d for d in get(target, "/v0/datasources").json()["datasources"] if d["name"] == "events")
    assert {k: listed[k] for k in ("id", "created_at", "updated_at", "columns")} == {
        k: one[k] for k in ("id", "created_at", "updated_at", "columns")
    }


def test_the_example_url_of_an_endpoint(target):
    analyst, ingest = token_values(target)["analyst"], token_values(target)["ingest"]

    def example(token: str, pipe: str = PIPE) -> requests.Response:  # as the CLI asks: the token in the query only
        params = {"format": "json", "pipe": pipe, "q": "", "token": token}
        return requests.get(target.url("/examples/query.http"), params=params, timeout=10)

    assert example(analyst).text == f"{target.base_url}/v0/pipes/{PIPE}.json?token={analyst}"
    assert example(ingest).status_code == 403
    assert example(target.token, "no_such_pipe").status_code == 404


def test_form_parameters_of_a_pipe_post_count_and_are_bounded(target):
    url, expected = target.url(f"/v0/pipes/{PIPE}.json"), target.data(PIPE, {"feature": "search_bar"})
    assert len(expected) == 1
    posted = target.http.post(url, data={"feature": "search_bar"}, headers=target.auth())
    assert posted.status_code == 200 and posted.json()["data"] == expected
    too_long = target.http.post(url, data={"feature": "x" * (64 * 1024 + 1)}, headers=target.auth())
    assert too_long.status_code == 413, too_long.text


def test_sql_runs_a_pipes_node_as_tb_test_run_sends_it(target):
    nodes = get(target, f"/v0/pipes/{PIPE}").json()["nodes"]
    # the endpoint node, which reads the pipe's first node by name, with the parameters after the query
    query = urlencode({"q": nodes[-1]["sql"], "pipeline": PIPE}) + "&feature=search_bar"
    answer = target.http.get(target.url(f"/v0/sql?{query}"), headers=target.auth())
    assert answer.status_code == 200, answer.text
    row = target.data(PIPE, {"feature": "search_bar"})[0]
    assert answer.text == f"search_bar\t{row['usage_count']}\t{row['unique_users']}\n"
    # a templated node (`%` first) is rendered with the parameters: rate_limit_usage's first node, one tenant's limits
    first = get(target, "/v0/pipes/rate_limit_usage").json()["nodes"][0]["sql"]
    tenant = target.sql("SELECT tenant_id FROM tenant_rate_limits LIMIT 1")[0]["tenant_id"]
    templated = get(target, "/v0/sql", q=first + " FORMAT JSON", tenant_id=tenant)
    limits = target.sql(f"SELECT count() AS n FROM tenant_rate_limits FINAL WHERE tenant_id = '{tenant}'")[0]["n"]
    assert templated.status_code == 200 and templated.json()["rows"] == limits > 0


def test_sql_with_a_pipeline_keeps_its_rules(target):
    analyst = token_values(target)["analyst"]
    assert get(target, "/v0/sql", analyst, q="SELECT 1", pipeline=PIPE).status_code == 403
    assert get(target, "/v0/sql", q="SELECT 1", pipeline="no_such_pipe").status_code == 404
    assert get(target, "/v0/sql", q="SELECT * FROM whole_days").status_code == 400  # a node needs its pipeline
    # a template is checked as it renders: no table functions, no other database
    for sql in ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "SELECT * FROM other_db.events"):
        refused = get(target, "/v0/sql", q=f"%\n{sql} WHERE {{{{ String(x) }}}} != ''", x="a")
        assert refused.status_code == 400, (sql, refused.text)


def test_v1_appends_and_replaces_answer_jobs_without_an_error_key(writer):
    server, _ = writer
    rows = [event(event_id=f"v1-{i}", feature="v1") for i in range(4)]
    body = "\n".join(json.dumps(r) for r in rows).encode()
    url = server.url("/v1/datasources/events/append")
    # the format from the Content-Type, gzip from Content-Encoding, as the CLI sends a fixture
    plain = server.http.post(url, data=body, headers={**server.auth(), "Content-Type": "application/x-ndjson"})
    zipped = server.http.post(
        url,
        data=gzip.compress(body + b"\n" + b'{"event_id": "no timestamp"}'),
        headers={**server.auth(), "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )
    for answer in (plain, zipped):
        assert answer.status_code == 200, answer.text
        assert isinstance(answer.json()["id"], str) and "error" not in answer.json()
    job = get(server, f"/v0/jobs/{zipped.json()['id']}", debug="blocks,block_log").json()
    assert job["status"] == "done" and "error" not in job
    assert [(r["lines"], r["quarantine"]) for b in job["blocks"] for r in b["process_return"]] == [(4, 1)]
    assert [j["id"] for j in get(server, "/v0/jobs").json()["jobs"][:2]] == [zipped.json()["id"], plain.json()["id"]]
    assert count(server, "events", "feature = 'v1'") == 8

    csv = "".join(",".join(f'"{v}"' for v in r.values()) + "\n" for r in rows[:1]).encode()
    replace = server.url("/v1/datasources/events/replace")
    assert (
        server.http.post(replace, data=csv, headers={**server.auth(token_values(server)["ingest"])}).status_code == 403
    )
    replaced = server.http.post(replace, data=csv, headers={**server.auth(), "Content-Type": "text/csv"})
    assert replaced.status_code == 200 and replaced.json()["mode"] == "replace", replaced.text
    assert count(server, "events") == 1


def test_a_project_with_env_files_sets_its_secrets_through_the_cli(writer, tmp_path):
    """Every `tb --local` command first sets the project's `.env` and `.env.local` as secrets (/v0/variables)."""
    target, folder = writer
    project = tmp_path / "project"
    shutil.copytree(folder, project, ignore=shutil.ignore_patterns("data"))
    (project / ".env").write_text("CLI_SECRET=from-env\nOTHER_SECRET=x\n")
    (project / ".env.local").write_text("CLI_SECRET=from-env-local\n")
    tb(target, project, "--local", "sql", "SELECT 1")
    tb(target, project, "--local", "sql", "SELECT 2")  # a second run updates what exists
    names = [v["name"] for v in get(target, "/v0/variables").json()["variables"]]
    assert {"CLI_SECRET", "OTHER_SECRET"} <= set(names)
    assert "from-env" not in get(target, "/v0/variables/CLI_SECRET").text

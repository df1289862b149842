"""The README stays true: its commands are the ones tests and CI run, and every endpoint has a working example."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from conftest import CLI, ROOT, free_port, readme_block, readme_section, run_script

README = (ROOT / "README.md").read_text()
CONTRACT = (ROOT / "docs/ENDPOINTS.md").read_text()
TOUR = readme_section("endpoint-tour")
EXAMPLES = dict(re.findall(r'\| `(\w+)` \| [^|]+ \| `curl "\$TB_HOST/v0/pipes/(\w+\.json\?[^"]+)"` \|', TOUR))
CONTRACT_ENDPOINTS = re.findall(r"^\| `(\w+)` \|", CONTRACT, flags=re.MULTILINE)


def test_the_contract_copy_matches_the_teams_contract():
    shared = ROOT.parent / "shared/ENDPOINTS.md"
    if not shared.exists():
        pytest.skip("no ../shared/ENDPOINTS.md beside this checkout")
    assert shared.read_text() == CONTRACT


def test_every_endpoint_of_the_contract_has_a_pipe_and_a_readme_example():
    assert len(CONTRACT_ENDPOINTS) == 18
    assert sorted(EXAMPLES) == sorted(CONTRACT_ENDPOINTS)
    for name in CONTRACT_ENDPOINTS:
        assert (ROOT / "endpoints" / f"{name}.pipe").exists(), name


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_readme_example_works(target, name):
    url = urlsplit(EXAMPLES[name])
    assert url.path == f"{name}.json"
    params = {k: v for k, v in parse_qsl(url.query) if k != "token"}
    assert dict(parse_qsl(url.query))["token"] == "$TB_TOKEN"
    assert target.data(name, params), f"the README example of {name} returns no rows"


def test_readme_token_line_gets_the_admin_token(target):
    line = next(line for line in README.splitlines() if line.startswith("export TB_TOKEN="))
    env = {**os.environ, "TB_HOST": target.base_url}
    out = subprocess.run(["bash", "-c", f"{line} && echo $TB_TOKEN"], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == target.token


@pytest.mark.embedded
def test_make_run_serves_the_project_and_prints_working_curl_lines(tmp_path):
    assert "make run" in README and "make test" in README
    port = free_port()
    args = ["make", "--no-print-directory", "run", f"PORT={port}", f"DATA_DIR={tmp_path / 'data'}"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in proc.stdout:
            if "ready at" in line:
                break
        endpoints = sorted(p.stem for p in (ROOT / "endpoints").glob("*.pipe"))
        curls = []
        for line in proc.stdout:  # the curl lines follow the ready line, one per endpoint
            if line.strip().startswith("curl "):
                curls.append(line.strip())
            if len(curls) == len(endpoints):
                break
        assert sorted(re.search(r"/v0/pipes/(\w+)\.json", curl).group(1) for curl in curls) == endpoints
        for curl in curls:
            url = curl.split("'")[1]
            response = requests.get(url, timeout=30)
            assert response.status_code == 200, (url, response.text)
        # then the dashboard's URL, with the read-only analyst token in its fragment
        dashboard = next(proc.stdout).strip()
        assert dashboard.startswith(f"dashboard: http://127.0.0.1:{port}/dashboard/#token="), dashboard
        page, token = dashboard.removeprefix("dashboard: ").split("#token=")
        assert requests.get(page, timeout=10).status_code == 200
        assert requests.get(f"{page}vendor/chart.umd.js", timeout=10).status_code == 200  # make brought Chart.js
        analyst = requests.get(url.split("/v0/")[0] + "/v0/pipes/feature_usage.json", params={"token": token})
        assert analyst.status_code == 200
        refused = requests.post(url.split("/v0/")[0] + "/v0/events?name=events", params={"token": token}, data="{}")
        assert refused.status_code == 403  # read-only: the page's token cannot write
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_readme_jwt_example_keeps_a_tenant_to_its_rows(target):
    out = run_script(readme_block("jwt-example").replace(".venv/bin/usage-analytics", CLI), target)
    rows = json.loads(out.stdout)["data"]
    assert rows and {row["tenant_id"] for row in rows} == {"tenant_acme"}, out.stderr


def test_readme_data_sources_api_example(start_server):
    """The README's file appends, replace and delete, run as written on a server of our own."""
    from conftest import count
    from test_datasources_api import assert_rollups_agree

    _, target = start_server(ROOT)
    script = "set -e\n" + readme_block("datasources-example").replace("curl ", "curl -fsS ")
    out = run_script(script, target, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert count(target, "tenant_rate_limits", "endpoint = '/api/v1/export'") == 2
    assert count(target, "api_logs", "toDate(timestamp) = '2025-05-13'") == 6
    assert count(target, "api_logs", "tenant_id = 'tenant_hooli'") == 0
    assert count(target, "api_logs") > 6
    assert_rollups_agree(target)


@pytest.mark.embedded
def test_readme_tinybird_local_section_runs_as_written(tmp_path):
    """`usage-analytics local`, then every `tb` line of the section, unchanged, from a copy of the project."""
    import shlex

    from conftest import ServerProcess, Target, copy_project, run_tb

    lines = [line.split("  #")[0].strip() for line in readme_block("tb-local-example").splitlines() if line.strip()]
    serve, commands = lines[0], lines[1:]
    assert serve.startswith(".venv/bin/usage-analytics local ") and serve.endswith("&")
    project = copy_project(tmp_path / "project")
    server = ServerProcess(project, tmp_path / "data")
    target = server.start()
    try:
        outputs = {}
        for command in commands:
            args = shlex.split(command)
            assert args[0] == ".venv/bin/tb", command
            done = run_tb(target, project, *args[1:])
            assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
            outputs[" ".join(args[1:3])] = done.stdout
        listed = target.http.get(target.url("/v1/user/workspaces"), headers=target.auth()).json()["workspaces"]
        (tested_in,) = [ws for ws in listed if ws["name"].startswith("Tinybird_Local_Test_")]
        tested_rows = Target(target.base_url, tested_in["token"]).sql("SELECT count() AS n FROM events")
    finally:
        server.stop()
    cases = sum(case.read_text().count("- name:") for case in (ROOT / "tests").glob("*.yaml"))
    files = len(list((ROOT / "tests").glob("*.yaml")))
    tested = outputs["--local test"]
    assert f"{files}/{files} passed" in tested and "skipped" not in tested and cases > 70, tested
    assert len(re.findall(r"^✓ (?!\d+/\d+ passed$).+ passed$", tested, re.MULTILINE)) == cases, tested  # each case
    # the workspace the cases ran in got its rows from the fixtures the CLI appended, once each
    assert tested_rows == [{"n": len((ROOT / "fixtures/events.ndjson").read_text().splitlines())}]
    assert "5000" in outputs["--local sql"] and "usage-analytics" in outputs["local version"]

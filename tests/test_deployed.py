"""The project as a user ships it: deployed with Tinybird's own `tb --local deploy`, fixtures sent through the Events
API, then every endpoint's JSON checked against the independent oracle.

By default the target is the embedded server started on a folder with no datafiles at all, so every table, view
and endpoint the checks reach was created by the deployment; with TB_HOST and TB_TOKEN it is that Tinybird Local
(the CLI finds it through TB_LOCAL_PORT, the port of TB_HOST), so the same file deploys to and checks both.
"""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest
from conftest import ROOT, ServerProcess, Target, copy_project, load_fixtures, remote, run_tb
from test_endpoints import VALID, assert_answers_as_the_oracle


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    base = tmp_path_factory.mktemp("deployed")
    project = copy_project(base / "project", yaml_cases=False)
    server = None
    if remote():
        target = Target(*remote())
        assert urlsplit(target.base_url).hostname in ("localhost", "127.0.0.1"), "tb --local deploys to a local host"
    else:
        (base / "empty").mkdir()
        shutil.copy(ROOT / ".tinyb", base / "empty")  # the workspace the CLI looks for, with nothing in it
        server = ServerProcess(base / "empty", base / "data")
        target = server.start()
        assert target.http.get(target.url("/v0/pipes"), headers=target.auth()).json()["pipes"] == []
    try:
        done = run_tb(target, project, "--local", "deploy")
        assert done.returncode == 0 and "is live" in done.stdout, done.stdout + done.stderr
        load_fixtures(target)
        yield target
    finally:
        if server is not None:
            server.stop()


@pytest.mark.parametrize(("endpoint", "case", "params"), VALID, ids=[f"{e}-{c}" for e, c, _ in VALID])
def test_deployed_endpoint_matches_the_oracle(deployed, endpoint, case, params):
    assert_answers_as_the_oracle(deployed, endpoint, params)

"""Secrets: `/v0/variables` as the `tb` CLI sets them, `tb_secret()` in templates, and `.env` loaded at build."""

from __future__ import annotations

import pytest
from conftest import ServerProcess

pytestmark = pytest.mark.embedded

PIPE = """NODE endpoint
SQL >
    %
    SELECT {{ tb_secret('GREETING', 'hi') }} AS greeting, {{ tb_secret('OTHER', 'none') }} AS other

TYPE ENDPOINT
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server for the module: the test that creates a variable deletes it again."""
    root = tmp_path_factory.mktemp("secrets")
    (root / "project/endpoints").mkdir(parents=True)
    (root / "project/endpoints/greet.pipe").write_text(PIPE)
    (root / "project/.env").write_text("GREETING=from-env\n")
    (root / "project/.env.local").write_text("GREETING=from-env-local\n")
    server = ServerProcess(root / "project", root / "data")
    yield server.start()
    server.stop()


def greeting(target) -> list[dict]:
    return target.data("greet")


def test_env_files_are_secrets_and_tb_secret_reads_them(served):
    assert greeting(served) == [{"greeting": "from-env-local", "other": "none"}]  # .env.local wins over .env
    # the value is bound at query time, never written into the SQL
    explained = served.http.get(served.url("/v0/pipes/greet/explain"), headers=served.auth()).json()
    assert "from-env" not in explained["debug_query"]


def test_variables_create_update_read_and_delete(served):
    url = served.url("/v0/variables")
    created = served.http.post(url, data={"name": "OTHER", "value": "s3cret"}, headers=served.auth())
    assert created.status_code == 200 and created.json()["name"] == "OTHER", created.text
    assert "s3cret" not in created.text
    assert greeting(served) == [{"greeting": "from-env-local", "other": "s3cret"}]
    again = served.http.post(url, data={"name": "OTHER", "value": "x"}, headers=served.auth())
    assert again.status_code == 409
    updated = served.http.put(f"{url}/OTHER", data={"value": "changed"}, headers=served.auth())
    assert updated.status_code == 200 and greeting(served)[0]["other"] == "changed"
    read = served.http.get(f"{url}/OTHER", headers=served.auth())
    assert read.status_code == 200 and "changed" not in read.text
    assert [v["name"] for v in served.http.get(url, headers=served.auth()).json()["variables"]] == ["GREETING", "OTHER"]
    assert served.http.delete(f"{url}/OTHER", headers=served.auth()).status_code == 204
    assert greeting(served)[0]["other"] == "none"  # the default again
    assert served.http.get(f"{url}/OTHER", headers=served.auth()).status_code == 404


def test_variables_need_an_admin_token_and_a_valid_name(served):
    url = served.url("/v0/variables")
    assert served.http.get(url).status_code == 403
    refused = served.http.post(url, data={"name": "1; DROP", "value": "x"}, headers=served.auth())
    assert refused.status_code == 400 and "Invalid secret name" in refused.json()["error"]

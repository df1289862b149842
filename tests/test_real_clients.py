"""Clients people already use work against the embedded server unchanged: tinybird-python-sdk and tinybird-sdk."""

from __future__ import annotations

import json

import pytest
from conftest import ServerProcess, emptied, event, run_cli, slice_project
from tb.api import API
from tb.datasource import Datasource

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("clients")
    process = ServerProcess(slice_project(root / "project"), root / "data")
    yield process, process.start()
    process.stop()


@pytest.fixture
def served(server):
    """The module's server, `events` emptied; the project folder is where file:// appends may read from."""
    return emptied(server[1])


def test_python_sdk_appends_through_the_events_api_and_reads_a_pipe(served):
    with Datasource("events", served.token, api_url=served.base_url) as datasource:
        for i in range(500):
            datasource << event(event_id=f"sdk-{i}", user_id=f"u{i % 9}", feature="search_bar")
    answer = API(served.token, served.base_url).get("/pipes/feature_usage.json", params={"feature": "search_bar"})
    assert answer.json()["data"] == [{"feature": "search_bar", "usage_count": 500, "unique_users": 9}]


def test_python_sdk_waits_out_a_rate_limited_jwt(served):
    served.send("events", [event(event_id="e1", feature="search_bar")])
    minted = run_cli(served, "token", "jwt", "--pipe", "feature_usage", "--rps", "1")
    token = minted.stdout.strip()
    assert [served.pipe("feature_usage", token=token).status_code for _ in range(2)] == [200, 429]
    # the SDK's urllib3 Retry honours our Retry-After on 429, so every call ends in the right answer
    api = API(token, served.base_url)
    answers = [api.get("/pipes/feature_usage.json").json()["data"] for _ in range(3)]
    assert answers == [[{"feature": "search_bar", "usage_count": 1, "unique_users": 1}]] * 3


def test_forward_sdk_ingests_queries_appends_and_deletes(server, served, tmp_path):
    """tinybird-sdk (Tinybird Forward's Python SDK): its API client, unchanged, on every call it makes."""
    from tinybird_sdk.api import TinybirdApi, TinybirdApiError

    api = TinybirdApi({"base_url": served.base_url, "token": served.token})
    rows = [event(event_id=f"fwd-{i}", user_id=f"u{i % 4}", feature="export") for i in range(40)]
    assert api.ingest_batch("events", rows) == {"successful_rows": 40, "quarantined_rows": 0}
    assert api.ingest("events", event(event_id="fwd-x", feature="export")) == {
        "successful_rows": 1,
        "quarantined_rows": 0,
    }
    answer = api.query("feature_usage", {"feature": "export"})
    assert answer["data"] == [{"feature": "export", "usage_count": 41, "unique_users": 5}]
    assert api.sql("SELECT count() AS n FROM events FORMAT JSON")["data"] == [{"n": 41}]

    # appends from a local file (multipart upload) and from a URL, format taken from the extension
    csv_file = tmp_path / "more.csv"
    columns = ("event_id", "user_id", "session_id", "event_type", "event_name", "page", "feature", "properties")
    csv_file.write_text(
        ",".join(columns + ("timestamp",))
        + "\n"
        + "\n".join(f'csv-{i},u9,s,click,x,/,import,"{{}}",2025-05-01 10:00:00' for i in range(5))
        + "\n"
    )
    assert api.append_datasource("events", {"file": str(csv_file)})["statistics"]["row_count"] == 5
    ndjson_file = server[0].project_dir / "more.ndjson"  # file:// reaches only the project folder and the data dir
    ndjson_file.write_text("\n".join(json.dumps(event(event_id=f"url-{i}", feature="import")) for i in range(3)))
    assert api.append_datasource("events", {"url": ndjson_file.as_uri()})["statistics"]["row_count"] == 3
    assert api.query("feature_usage", {"feature": "import"})["data"][0]["usage_count"] == 8

    assert api.delete_datasource("events", {"delete_condition": "feature = 'import'", "dry_run": True}) == {
        "rows_to_be_deleted": 8
    }
    assert api.delete_datasource("events", {"delete_condition": "feature = 'import'"})["rows_affected"] == 8
    assert api.query("feature_usage", {"feature": "import"})["data"] == []
    with pytest.raises(TinybirdApiError) as refused:
        api.delete_datasource("events", {"delete_condition": "no_such_column = 1"})
    assert refused.value.status_code == 400 and "delete_condition" in str(refused.value)
    api.truncate_datasource("events")
    assert api.sql("SELECT count() AS n FROM events FORMAT JSON")["data"] == [{"n": 0}]

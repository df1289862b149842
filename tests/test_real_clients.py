"""Clients people already use work against the embedded server unchanged: tinybird-python-sdk."""

from __future__ import annotations

import pytest
from conftest import event, run_cli, slice_project
from tb.api import API
from tb.datasource import Datasource

pytestmark = pytest.mark.embedded


@pytest.fixture
def served(tmp_path, start_server):
    return start_server(slice_project(tmp_path / "project"))[1]


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

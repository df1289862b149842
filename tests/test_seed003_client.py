"""Seed 003's own tracking client and query functions (examples/seed003_client.mjs, plain JavaScript on Node's
fetch), run against the server: both example events land, and both queries return them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from conftest import ROOT, slice_project

pytestmark = pytest.mark.embedded


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_the_seeds_tracker_lands_its_events_and_its_queries_find_them(tmp_path, start_server):
    project = slice_project(tmp_path / "project")
    for name in ("daily_active_users", "user_event_activity"):
        shutil.copy(ROOT / f"endpoints/{name}.pipe", project / "endpoints")
    (project / "pipes").mkdir()  # the roll-up daily_active_users reads whole days from
    shutil.copy(ROOT / "datasources/events_daily_users_mv.datasource", project / "datasources")
    shutil.copy(ROOT / "pipes/events_daily_users.pipe", project / "pipes")
    _, target = start_server(project)
    env = {**os.environ, "TB_HOST": target.base_url, "TB_TOKEN": target.token}
    done = subprocess.run(
        ["node", str(ROOT / "examples/seed003_client.mjs")], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["tracked"] == [{"successful_rows": 1, "quarantined_rows": 0}] * 2
    assert {row["active_users"] for row in answer["daily"]} == {1}  # one user, on one day (two around midnight)
    assert sorted((r["event_type"], r["event_count"]) for r in answer["activity"]) == [
        ("button_click", 1),
        ("page_view", 1),
    ]
    stored = target.sql("SELECT session_id, event_name, page, feature, properties FROM events ORDER BY event_type")
    assert stored[0] == {
        "session_id": "",
        "event_name": "",
        "page": "",
        "feature": "",
        "properties": '{"button":"signup"}',
    }

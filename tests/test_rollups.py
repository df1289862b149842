"""A roll-up never changes an answer: each roll-up-backed endpoint equals its question asked of the raw table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cases
import oracle
import pytest
from conftest import ROOT, ServerProcess, post_file
from matching import is_percentile, values_match

from usage_analytics.bench.rawforms import RAW_FORMS, raw_query

ROWS = cases.load_rows()
CASES = [
    (endpoint, case, params)
    for endpoint, items in cases.valid_cases(ROWS).items()
    if endpoint in RAW_FORMS
    for case, params in items
]
# user_activity ranks users by bounds from its daily roll-up: windows whose edges cut days, one side only, a few
# days, within one hour, and small limits (where ties at the limit-th user decide who is in)
_TENANT = cases._top(ROWS["api_logs"], "tenant_id")
CASES += [
    ("user_activity", case, params)
    for case, params in [
        ("unaligned_window", cases.ODD),
        ("few_days_top_3", {"limit": "3", **cases.FEW_DAYS}),
        ("whole_days_top_2", {"start_date": "2025-05-12 00:00:00", "end_date": "2025-05-13 23:59:59", "limit": "2"}),
        ("from_an_unaligned_start", {"start_date": "2025-05-20 08:03:12"}),
        ("to_an_unaligned_end_top_1", {"end_date": "2025-04-10 13:17:45", "limit": "1"}),
        ("within_one_hour", cases.ONE_HOUR),
        ("one_tenant_one_month_top_100", {"tenant_id": _TENANT, "limit": "100", **cases.MONTH}),
        ("no_data", cases.EMPTY),
    ]
]
# app_feature_usage, api_usage_by_tenant and geographic_distribution merge whole days of their roll-ups (the last
# two count users from the days of each user) with the raw rows of the partial days: edges on both sides, one side
# only, both in one day (empty features: test_empty_features_... below)
_DEVICE = cases._top(ROWS["app_events"], "device_type")
CASES += [("app_feature_usage", "few_days_one_device", {"device_type": _DEVICE, **cases.FEW_DAYS})]
CASES += [("geographic_distribution", "few_days_one_tenant", {"tenant_id": _TENANT, **cases.FEW_DAYS})]
CASES += [
    (endpoint, case, params)
    for endpoint in ("app_feature_usage", "api_usage_by_tenant", "geographic_distribution")
    for case, params in [
        ("few_days", cases.FEW_DAYS),
        ("from_an_unaligned_start", {"start_date": "2025-05-20 08:03:12"}),
        ("to_an_unaligned_end_top_3", {"end_date": "2025-04-10 13:17:45", "limit": "3"}),
        ("within_one_hour", cases.ONE_HOUR),
        ("whole_days", cases.MONTH),
        ("no_data", cases.EMPTY),
    ]
]
# session_insights merges each session grouping's days (a session may cross midnight): whole days from the roll-up,
# partial days from the raw rows, newest first, with small limits where the order decides who is in
_USER = cases._top(ROWS["app_events"], "user_id")
CASES += [
    ("session_insights", case, params)
    for case, params in [
        ("few_days", cases.FEW_DAYS),
        ("few_days_one_user", {"user_id": _USER, **cases.FEW_DAYS}),
        ("one_user_all_time", {"user_id": _USER}),
        ("from_an_unaligned_start", {"start_date": "2025-05-20 08:03:12"}),
        ("to_an_unaligned_end_top_3", {"end_date": "2025-04-10 13:17:45", "limit": "3"}),
        ("within_one_hour", cases.ONE_HOUR),
        ("whole_days_top_1000", {"limit": "1000", **cases.MONTH}),
        ("no_data", cases.EMPTY),
    ]
]
# feature_usage merges its roll-up's whole days with the raw partial days as app_feature_usage does, over events,
# whose rows without a feature count only when asked for by name
CASES += [
    ("feature_usage", case, params)
    for case, params in [
        ("few_days", cases.FEW_DAYS),
        ("from_an_unaligned_start", {"start_date": "2025-05-20 08:03:12"}),
        ("to_an_unaligned_end", {"end_date": "2025-04-10 13:17:45"}),
        ("within_one_hour", cases.ONE_HOUR),
        ("whole_days", cases.MONTH),
        ("empty_feature_few_days", {"feature": "", **cases.FEW_DAYS}),
        ("no_data", cases.EMPTY),
    ]
]


def test_every_rollup_reader_has_a_raw_form():
    from conftest import ROOT

    from usage_analytics.local import load_project

    project = load_project(ROOT)
    rollups = {name for name in project.datasources if name.endswith("_mv")}
    readers = {
        name
        for name, pipe in project.endpoints.items()
        if any(rollup in node.sql for node in pipe.nodes for rollup in rollups)
    }
    assert readers == set(RAW_FORMS)


@pytest.mark.parametrize(("endpoint", "case", "params"), CASES, ids=[f"{e}-{c}" for e, c, _ in CASES])
def test_rollup_answer_equals_the_raw_answer(target, endpoint, case, params):
    served = target.data(endpoint, params)
    raw = target.sql(raw_query(endpoint, params, ROOT))
    truth = oracle.expected(endpoint, params, ROWS)
    assert len(served) == len(raw) == len(truth), (len(served), len(raw), len(truth))
    for got, want, band in zip(served, raw, truth, strict=True):
        assert list(got) == list(want)
        for column, value in want.items():
            if is_percentile(column):
                # a timing quantile is not the exact percentile: the contract's band (one point either way) decides
                assert got[column] == band[column], (column, got[column], band[column], value)
            else:
                assert values_match(column, got[column], value), (column, got, want)


def project_of(root: Path, *paths: str) -> Path:
    """root/project holding these datafiles of the project, at the same paths."""
    project = root / "project"
    for path in paths:
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, project / path)
    return project


MIDNIGHT = {"user_id": "user_midnight", "session_id": "sess_midnight"}
MIDNIGHT_AT = ("2025-05-12 23:50:00", "2025-05-13 00:05:00", "2025-05-13 00:20:00")


@pytest.fixture(scope="module")
def app_events_server(tmp_path_factory):
    """A server of app_events, its feature and session roll-ups, app_feature_usage and session_insights, holding the
    fixture's app_events with every fifth row's feature emptied (the fixtures have no empty feature) and a session
    across midnight."""
    root = tmp_path_factory.mktemp("app_events")
    project = project_of(
        root,
        "datasources/app_events.datasource",
        "datasources/app_events_daily_features_mv.datasource",
        "pipes/app_events_daily_features.pipe",
        "endpoints/app_feature_usage.pipe",
        "datasources/app_events_daily_sessions_mv.datasource",
        "pipes/app_events_daily_sessions.pipe",
        "endpoints/session_insights.pipe",
    )
    rows = [{**row, "feature": ""} if k % 5 == 0 else row for k, row in enumerate(ROWS["app_events"])]
    rows += [
        {**ROWS["app_events"][0], **MIDNIGHT, "event_id": f"midnight_{k}", "timestamp": moment}
        for k, moment in enumerate(MIDNIGHT_AT)
    ]
    server = ServerProcess(project, root / "data")
    try:
        target = server.start()
        assert target.send("app_events", rows).json()["successful_rows"] == len(rows)
        yield target, rows
    finally:
        server.stop()


@pytest.mark.embedded
@pytest.mark.parametrize(
    "params",
    [{}, cases.ODD, cases.ONE_HOUR, {"feature": ""}, {"feature": "", **cases.FEW_DAYS}, {"device_type": "mobile"}],
    ids=["all_time", "unaligned", "one_hour", "empty_feature", "empty_feature_few_days", "one_device"],
)
def test_empty_features_are_skipped_unless_asked_for_through_both_the_rollup_and_the_edges(app_events_server, params):
    target, rows = app_events_server
    served = target.data("app_feature_usage", params)
    assert served == target.sql(raw_query("app_feature_usage", params, ROOT))
    assert served == oracle.expected("app_feature_usage", params, {"app_events": rows})
    assert served and all((row["feature"] == "") == ("feature" in params) for row in served)


@pytest.fixture(scope="module")
def feature_events_server(tmp_path_factory):
    """A server of feature_events, its per-user roll-up and user_feature_usage, empty at the start."""
    root = tmp_path_factory.mktemp("feature_events")
    project = project_of(
        root,
        "datasources/feature_events.datasource",
        "datasources/feature_events_user_features_mv.datasource",
        "pipes/feature_events_user_features.pipe",
        "endpoints/user_feature_usage.pipe",
    )
    server = ServerProcess(project, root / "data")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.mark.embedded
def test_user_feature_usage_follows_appends_replaces_and_deletes_through_its_rollup(feature_events_server):
    """The per-user roll-up keeps user_feature_usage equal to its raw form across every kind of write: appends in
    several batches (partial rows of one key in several parts), a replace of some rows, a delete of others."""
    target = feature_events_server
    users = sorted({row["user_id"] for row in ROWS["feature_events"]})[:3]
    mine = [row for row in ROWS["feature_events"] if row["user_id"] in users]
    for batch in (mine[0::3], mine[1::3], mine[2::3]):
        assert target.send("feature_events", batch).json()["successful_rows"] == len(batch)
    kept = list(mine)

    def check() -> None:
        for user in users + ["nobody"]:
            asks = [{"user_id": user}, {}]
            rows = [row for row in kept if row["user_id"] == user]
            if rows:
                asks += [{"user_id": user, "feature_id": rows[0]["feature_id"]}]
                asks += [{"user_id": user, "product_version": rows[-1]["product_version"]}]
            for params in asks:
                served = target.data("user_feature_usage", params)
                assert served == target.sql(raw_query("user_feature_usage", params, ROOT)), params
                assert served == oracle.expected("user_feature_usage", params, {"feature_events": kept}), params

    check()
    # a replace of one user's rows of one day: those rows become one new row, the roll-up is rebuilt to match
    day = mine[0]["timestamp"][:10]
    condition = f"user_id = '{users[0]}' AND toDate(timestamp) = '{day}'"
    new = {**mine[0], "event_id": "evt_replaced", "feature_id": "feature_replaced"}
    kept = [r for r in kept if not (r["user_id"] == users[0] and r["timestamp"][:10] == day)] + [new]
    params = {"name": "feature_events", "mode": "replace", "replace_condition": condition}
    answer = post_file(target, params, "ndjson", "r.ndjson", json.dumps(new).encode())
    assert answer.status_code == 200, answer.text
    check()
    # a delete of another user's rows of one feature
    feature = next(r["feature_id"] for r in kept if r["user_id"] == users[1])
    url = target.url("/v0/datasources/feature_events/delete")
    condition = f"user_id = '{users[1]}' AND feature_id = '{feature}'"
    assert target.http.post(url, data={"delete_condition": condition}, headers=target.auth()).status_code == 200
    kept = [r for r in kept if not (r["user_id"] == users[1] and r["feature_id"] == feature)]
    check()


@pytest.mark.embedded
@pytest.mark.parametrize(
    ("params", "duration"),
    [
        ({}, 1800),
        ({"start_date": "2025-05-12 00:00:00", "end_date": "2025-05-13 23:59:59"}, 1800),  # whole days only
        ({"start_date": "2025-05-12 23:55:00"}, 900),  # the window cuts the session: its first event is left out
        ({"end_date": "2025-05-13 00:05:00"}, 900),
        ({"start_date": "2025-05-13 00:00:00", "end_date": "2025-05-13 00:19:59"}, None),  # one event: duration 0
    ],
    ids=["all_time", "whole_days", "cut_at_the_start", "cut_at_the_end", "one_event"],
)
def test_a_session_across_midnight_is_one_session_through_the_rollup_and_the_edges(app_events_server, params, duration):
    target, rows = app_events_server
    params = {**params, "user_id": MIDNIGHT["user_id"]}
    served = target.data("session_insights", params)
    assert served == target.sql(raw_query("session_insights", params, ROOT))
    assert served == oracle.expected("session_insights", params, {"app_events": rows})
    assert [row["session_duration_seconds"] for row in served] == ([duration] if duration else [])

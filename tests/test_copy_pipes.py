"""Copy pipes (TYPE COPY) on a small project written here: on demand through the Copy Pipes API, and on schedule.

The server runs with `--copy-schedules-at-start`, so the every-minute copy runs once as it starts instead of the test
waiting for the next minute; when later runs are due is `next_run`'s, checked on its own.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import ServerProcess, Target, run_tb, token_values, write_files

from usage_analytics.local.copies import next_run

pytestmark = pytest.mark.embedded

FILES = {
    "datasources/sales.datasource": """\
        SCHEMA >
            `id` Int32 `json:$.id`,
            `shop` String `json:$.shop`,
            `amount` Float64 `json:$.amount`

        ENGINE "MergeTree"
        ENGINE_SORTING_KEY "shop, id"
        """,
    "datasources/big_sales.datasource": """\
        SCHEMA >
            `id` Int32,
            `shop` String,
            `amount` Float64

        ENGINE "MergeTree"
        ENGINE_SORTING_KEY "id"
        """,
    "datasources/shop_totals.datasource": """\
        SCHEMA >
            `shop` String,
            `total` Float64,
            `sales` UInt64

        ENGINE "MergeTree"
        ENGINE_SORTING_KEY "shop"
        """,
    "datasources/shop_totals_rows.datasource": """\
        SCHEMA >
            `shop` String,
            `rows` AggregateFunction(count)

        ENGINE "AggregatingMergeTree"
        ENGINE_SORTING_KEY "shop"
        """,
    "datasources/minutely.datasource": """\
        SCHEMA >
            `id` Int32,
            `shop` String,
            `amount` Float64

        ENGINE "MergeTree"
        ENGINE_SORTING_KEY "id"
        """,
    "pipes/copy_big_sales.pipe": """\
        TOKEN copier READ

        NODE big
        SQL >
            %
            {{ max_threads(2) }}
            SELECT id, shop, amount FROM sales
            WHERE amount >= {{ Float64(min_amount, 0, description="Smallest amount copied") }}

        TYPE COPY
        TARGET_DATASOURCE big_sales
        COPY_MODE append
        """,
    "pipes/snapshot_totals.pipe": """\
        NODE totals
        SQL >
            SELECT shop, sum(amount) AS total, count() AS sales FROM sales GROUP BY shop

        TYPE COPY
        TARGET_DATASOURCE shop_totals
        COPY_MODE replace
        """,
    "pipes/count_totals.pipe": """\
        NODE counted
        SQL >
            SELECT shop, countState() AS rows FROM shop_totals GROUP BY shop

        TYPE MATERIALIZED
        DATASOURCE shop_totals_rows
        """,
    "pipes/every_minute.pipe": """\
        NODE north
        SQL >
            SELECT id, shop, amount FROM sales WHERE shop = 'north'

        TYPE COPY
        TARGET_DATASOURCE minutely
        COPY_SCHEDULE * * * * *
        """,
    "endpoints/totals.pipe": """\
        TOKEN reader READ

        NODE endpoint
        SQL >
            SELECT * FROM shop_totals

        TYPE ENDPOINT
        """,
}
SALES = [
    {"id": 1, "shop": "north", "amount": 5.0},
    {"id": 2, "shop": "north", "amount": 50.0},
    {"id": 3, "shop": "south", "amount": 70.0},
]


def write_project(folder: Path) -> Path:
    write_files(folder, FILES)
    (folder / "fixtures").mkdir()
    (folder / "fixtures" / "sales.ndjson").write_text("\n".join(json.dumps(row) for row in SALES))
    return folder


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("copies")
    server = ServerProcess(write_project(root / "project"), root / "data")
    server.extra_args = ["--copy-schedules-at-start"]
    yield server.start()
    server.stop()


def copy(target, pipe: str, token: str | None = None, **params):
    return target.http.post(target.url(f"/v0/pipes/{pipe}/copy"), params=params, headers=target.auth(token))


def test_an_append_copy_adds_the_rows_its_parameters_select(shop):
    response = copy(shop, "copy_big_sales", min_amount="40")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "copy" and answer["tags"] == {"copy_target_datasource": "big_sales"}
    assert (answer["copy_mode"], answer["schedule"]) == ("append", {"cron": None, "status": "shutdown"})
    job = answer["job"]
    assert (job["kind"], job["status"], job["pipe_name"], job["mode"]) == ("copy", "done", "copy_big_sales", "append")
    assert job["datasource"]["name"] == "big_sales"
    assert job["statistics"]["row_count"] == 2
    assert shop.sql("SELECT id FROM big_sales ORDER BY id") == [{"id": 2}, {"id": 3}]

    followed = shop.http.get(job["job_url"], headers=shop.auth()).json()
    assert (followed["id"], followed["kind"], followed["pipe_name"]) == (job["id"], "copy", "copy_big_sales")
    assert job["id"] in [j["id"] for j in copy_jobs(shop)]

    by_its_token = copy(shop, "copy_big_sales", token_values(shop)["copier"], min_amount="60")
    assert by_its_token.status_code == 200, by_its_token.text
    assert shop.sql("SELECT id FROM big_sales ORDER BY id") == [{"id": 2}, {"id": 3}, {"id": 3}]


@pytest.mark.parametrize(("pipe", "params"), [("copy_big_sales", {"min_amount": "lots"}), ("snapshot_totals", {})])
def test_a_bad_parameter_or_mode_is_a_400_and_copies_nothing(shop, pipe, params):
    before = shop.sql("SELECT count() AS n FROM big_sales")
    response = copy(shop, pipe, **params, **({} if params else {"_mode": "merge"}))
    assert response.status_code == 400
    assert ("min_amount" if params else "_mode") in response.json()["error"]
    assert shop.sql("SELECT count() AS n FROM big_sales") == before


def test_a_token_without_scope_on_the_pipe_is_a_403(shop):
    assert copy(shop, "copy_big_sales", token_values(shop)["reader"]).status_code == 403
    assert copy(shop, "snapshot_totals", token_values(shop)["copier"]).status_code == 403
    assert copy(shop, "totals").status_code == 404  # an endpoint is no copy pipe


def test_a_replace_copy_swaps_the_target_and_its_rollups_whole(shop):
    assert copy(shop, "snapshot_totals").status_code == 200
    old = {"shops": 2, "sales": 3}
    assert shop.sql("SELECT count() AS shops, sum(sales) AS sales FROM shop_totals") == [old]
    assert shop.send("sales", [{"id": 4, "shop": "east", "amount": 1.0}]).status_code in (200, 202)
    new = {"shops": 3, "sales": 4}
    seen, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(shop.sql("SELECT count() AS shops, sum(sales) AS sales FROM shop_totals")[0])

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(3):
            response = copy(shop, "snapshot_totals")
            assert response.status_code == 200, response.text
            assert response.json()["job"]["mode"] == "replace"
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert seen and all(row in (old, new) for row in seen)
    assert shop.sql("SELECT count() AS shops, sum(sales) AS sales FROM shop_totals") == [new]
    # the roll-up the target feeds was rebuilt with it: one row per shop, not one per run
    assert shop.sql("SELECT countMerge(rows) AS n FROM shop_totals_rows") == [{"n": 3}]


def copy_jobs(target) -> list[dict]:
    return target.http.get(target.url("/v0/jobs"), params={"kind": "copy"}, headers=target.auth()).json()["jobs"]


def test_a_scheduled_copy_runs_while_the_server_does(shop):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "every_minute" not in [j["pipe_name"] for j in copy_jobs(shop)]:
        time.sleep(0.2)
    rows = shop.sql("SELECT id FROM minutely")
    # once at start, and again at each minute the module's run may cross: each run copies the same two rows
    assert {row["id"] for row in rows} == {1, 2} and len(rows) % 2 == 0
    described = shop.http.get(shop.url("/v0/pipes/every_minute"), headers=shop.auth()).json()
    assert described["schedule"] == {"cron": "* * * * *", "status": "running"}


def test_tb_copy_run_drives_it(shop, tmp_path):
    """Tinybird's own CLI: `tb --local build` into a workspace of its own, then `tb --local copy run --wait`."""
    project = write_project(tmp_path / "tb_shop")
    built = run_tb(shop, project, "--local", "build")
    assert built.returncode == 0, built.stdout + built.stderr
    done = run_tb(shop, project, "--local", "copy", "run", "copy_big_sales", "--param", "min_amount=60", "--wait")
    assert done.returncode == 0 and "Data copied to 'big_sales'" in done.stdout, done.stdout + done.stderr
    listed = shop.http.get(shop.url("/v1/user/workspaces"), headers=shop.auth()).json()["workspaces"]
    # the CLI builds into a workspace of its own (`Tinybird_Local_Build_<hash>`), beside the server's first one
    its_own = Target(shop.base_url, next(ws["token"] for ws in listed if ws["name"] != "project"))
    assert its_own.sql("SELECT id FROM big_sales") == [{"id": 3}]


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("* * * * *", datetime(2025, 5, 1, 10, 0, 30, tzinfo=UTC), datetime(2025, 5, 1, 10, 1, tzinfo=UTC)),
        ("0 * * * *", datetime(2025, 5, 1, 10, 0, tzinfo=UTC), datetime(2025, 5, 1, 11, 0, tzinfo=UTC)),
        ("30 2 * * 1", datetime(2025, 5, 1, 10, 0, tzinfo=UTC), datetime(2025, 5, 5, 2, 30, tzinfo=UTC)),
    ],
)
def test_the_next_run_follows_the_cron_schedule_in_utc(schedule, after, expected):
    assert next_run(schedule, after) == expected

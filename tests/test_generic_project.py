"""The embedded server knows nothing of usage-analytics: a small unrelated project, written here, is served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ServerProcess, write_files

pytestmark = pytest.mark.embedded

DATASOURCE = """\
DESCRIPTION >
    Sensor readings, with nested paths, defaults, a nullable and an array column.

SCHEMA >
    `device` String `json:$.device.id`,
    `site` LowCardinality(String) `json:$.device.site` DEFAULT 'unknown',
    `reading` Float64 `json:$.value`,
    `battery` Nullable(UInt8) `json:$.battery`,
    `tags` Array(String) `json:$.tags`,
    `ts` DateTime64(3) `json:$.ts`

ENGINE "MergeTree"
ENGINE_PARTITION_KEY "toYYYYMM(ts)"
ENGINE_SORTING_KEY "device, ts"
"""

ROLLUP = """\
SCHEMA >
    `hour` DateTime,
    `device` String,
    `readings` AggregateFunction(count),
    `avg_reading` AggregateFunction(avg, Float64)

ENGINE "AggregatingMergeTree"
ENGINE_SORTING_KEY "device, hour"
"""

MATERIALIZATION = """\
NODE hourly
SQL >
    SELECT toStartOfHour(ts) AS hour, device, countState() AS readings, avgState(reading) AS avg_reading
    FROM readings
    GROUP BY hour, device

TYPE MATERIALIZED
DATASOURCE readings_hourly
"""

ENDPOINT = """\
NODE device_readings
SQL >
    %
    SELECT device, hour, countMerge(readings) AS readings, round(avgMerge(avg_reading), 3) AS avg_reading
    FROM readings_hourly
    WHERE device = {{ String(device, required=True, description="Device id") }}
    GROUP BY device, hour

NODE endpoint
SQL >
    %
    SELECT * FROM device_readings
    WHERE avg_reading >= {{ Float64(min_avg, 0, description="Lowest hourly average") }}
    ORDER BY hour
    LIMIT {{ Int32(limit, 100) }}

TYPE ENDPOINT
"""


def reading(device, value, ts, **extra) -> str:
    return json.dumps({"device": {"id": device, "site": "lab"}, "value": value, "ts": ts, "tags": ["a"], **extra})


def write_sensors(folder: Path) -> Path:
    files = {
        "sources/readings.datasource": DATASOURCE,
        "sources/readings_hourly.datasource": ROLLUP,
        "transforms/rollup_readings.pipe": MATERIALIZATION,
        "api/device_stats.pipe": ENDPOINT,
        "fixtures/readings.ndjson": "\n".join(
            [reading("d1", 1.0, "2025-01-01 10:00:00.250"), reading("d1", 3.0, "2025-01-01 10:30:00")]
        ),
    }
    return write_files(folder, files)


@pytest.fixture(scope="module")
def sensors(tmp_path_factory):
    """The tests that only read share a server; the one that sends rows has its own (`fresh_sensors`)."""
    root = tmp_path_factory.mktemp("sensors")
    server = ServerProcess(write_sensors(root / "sensors"), root / "data")
    yield server.start()
    server.stop()


@pytest.fixture
def fresh_sensors(tmp_path, start_server):
    return start_server(write_sensors(tmp_path / "sensors"))[1]


def test_fixtures_load_through_the_materialization(sensors):
    assert sensors.data("device_stats", {"device": "d1"}) == [
        {"device": "d1", "hour": "2025-01-01 10:00:00", "readings": 2, "avg_reading": 2.0}
    ]


def test_ingested_rows_flow_into_the_rollup_and_typed_parameters_apply(fresh_sensors):
    sensors = fresh_sensors
    rows = [
        reading("d1", 10.0, "2025-01-01 11:05:00"),
        reading("d2", 5.0, "2025-01-01 11:05:00", battery=80),
        json.dumps({"device": {"id": "d3"}, "value": "warm", "ts": "2025-01-01 11:00:00"}),
        json.dumps({"device": {"id": "d3"}, "value": 1.5, "ts": "2025-01-01 11:00:00", "battery": 300}),
        json.dumps({"device": {"id": "d3"}, "value": 1.5, "ts": "2025-01-01 11:00:00", "tags": "not-a-list"}),
    ]
    assert sensors.send("readings", rows).json() == {"successful_rows": 2, "quarantined_rows": 3}
    assert sensors.data("device_stats", {"device": "d1", "min_avg": "5"}) == [
        {"device": "d1", "hour": "2025-01-01 11:00:00", "readings": 1, "avg_reading": 10.0}
    ]
    stored = sensors.sql("SELECT site, battery, tags FROM readings WHERE device = 'd2'")
    assert stored == [{"site": "lab", "battery": 80, "tags": ["a"]}]
    errors = sensors.sql("SELECT c__error_column FROM readings_quarantine ORDER BY insertion_date")
    assert sorted(e["c__error_column"][0] for e in errors) == ["battery", "reading", "tags"]


@pytest.mark.parametrize(
    ("params", "message"),
    [({}, "device"), ({"device": "d1", "min_avg": "high"}, "min_avg"), ({"device": "d1", "limit": "1.5"}, "limit")],
)
def test_parameter_errors_name_the_parameter(sensors, params, message):
    response = sensors.pipe("device_stats", params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_rows_before_limit_is_reported_when_a_limit_applies(sensors):
    body = sensors.pipe("device_stats", {"device": "d1", "limit": "1"}).json()
    assert body["rows"] == 1
    assert body["rows_before_limit_at_least"] >= 1

"""The Forward features public Tinybird projects declare, on small projects of ours served by the embedded server.

One module-scoped server holds a shop project that uses them all at once (types, jsonpaths, DEFAULTs, CODECs,
engine settings, TTL, INDEXES, ReplacingMergeTree, template functions, FINAL, LIMIT BY, window functions, JSON
columns, nested folders, tb_secret, a connector and a sink it does not run); two of its datasources are rebuilt
through `POST /v0/build` to evolve them with rows (FORWARD_QUERY, a changed ENGINE_TTL, a column removed and one
made Nullable). Every expected answer is derived from Tinybird's documentation, cited beside it; where it says
nothing, from ClickHouse's or from what Tinybird's own projects record, and the comment says so.
"""

from __future__ import annotations

import json

import pytest
from conftest import ServerProcess, count, write_files

from usage_analytics.local.project import ProjectError, load_project

pytestmark = pytest.mark.embedded

# https://www.tinybird.co/docs/sql-reference lists the types taken at ingest (UUID, DateTime64(P), Bool, Array(T),
# Map(K, V), Nullable, LowCardinality); https://www.tinybird.co/docs/forward/dev-reference/datafiles/datasource-files
# the ENGINE_* settings, INDEXES and FORWARD_QUERY. `json:$.lines[:]` reads a whole array and `$.lines[:].sku` the
# `sku` of each of its objects (the array syntax of Tinybird's own datafile guide in the `tinybird` package).
ORDERS = """\
DESCRIPTION >
    Orders as a shop sends them: nested objects, arrays of objects, maps, defaults, codecs, a skipping index and a TTL.

SCHEMA >
    `order_id` UUID `json:$.id`,
    `placed_at` DateTime64(3) `json:$.placed_at`,
    `traced_at` DateTime64(9) `json:$.trace.at`,
    `shipped_at` Nullable(DateTime64(3)) `json:$.shipping.shipped_at`,
    `paid` Bool `json:$.paid`,
    `customer` String `json:$.customer.name`,
    `labels` Map(String, String) `json:$.labels`,
    `lines` Array(Map(String, String)) `json:$.lines[:]`,
    `skus` Array(String) `json:$.lines[:].sku`,
    `coupons` Array(String) `json:$.coupons[:]` DEFAULT [],
    `channel` LowCardinality(String) `json:$.channel` DEFAULT 'web',
    `placed_on` Date `json:$.placed_on` DEFAULT toDate(placed_at),
    `note` String `json:$.note` DEFAULT '' CODEC(ZSTD(3)),
    `amount` Float64 `json:$.amount` CODEC(Gorilla, LZ4)

INDEXES >
    idx_customer customer TYPE bloom_filter GRANULARITY 4

ENGINE MergeTree
ENGINE_PARTITION_KEY toYear(placed_at)
ENGINE_PRIMARY_KEY channel, placed_at
ENGINE_SETTINGS index_granularity = 1024
ENGINE_SORTING_KEY channel, placed_at, order_id
ENGINE_TTL toDateTime(placed_at) + INTERVAL 50 YEAR
"""

ACCOUNTS = """\
DESCRIPTION >
    Customer accounts, one row per change: the highest version is the account, and a deleted flag removes it.

SCHEMA >
    `account_id` String `json:$.account_id`,
    `plan` String `json:$.plan`,
    `version` UInt32 `json:$.version`,
    `deleted` UInt8 `json:$.deleted` DEFAULT 0

ENGINE ReplacingMergeTree
ENGINE_IS_DELETED deleted
ENGINE_SORTING_KEY account_id
ENGINE_VER version
"""

LIVE_ACCOUNTS = """\
DESCRIPTION >
    Each account as its latest version says, deleted ones gone.

NODE endpoint
SQL >
    SELECT account_id, plan, version FROM accounts FINAL ORDER BY account_id

TYPE ENDPOINT
"""

SEARCH_ORDERS = """\
DESCRIPTION >
    Orders filtered by the template functions real projects use.

NODE matching
SQL >
    %
    SELECT {{ columns(fields, 'customer,channel') }}, {{ column(measure, 'amount') }} AS measure
    FROM orders
    WHERE
        channel != {{ tb_secret('hidden_channel', '') }}
        {% if defined(channels) %} AND channel IN {{ Array(channels, 'String') }} {% end %}
        {% if defined(sku_list) %} AND hasAny(skus, {{ split_to_array(sku_list, '') }}) {% end %}
        {% if defined(customer_like) %}
            AND customer LIKE {{ sql_unescape(String(customer_like), '%') }}
        {% end %}
        {% if defined(customer_exact) %} AND customer LIKE {{ String(customer_exact) }} {% end %}
        {% if defined(start) and defined(end) %}
            {% if date_diff_in_hours(start, end) > 48 %}
                {{ error('at most 48 hours between start and end') }}
            {% end %}
            AND placed_at BETWEEN {{ DateTime(start) }}
            AND {{ DateTime(end) }}
        {% end %}

NODE endpoint
SQL >
    SELECT * FROM matching ORDER BY measure DESC, customer

TYPE ENDPOINT
"""

TOP_ORDER_PER_CHANNEL = """\
DESCRIPTION >
    The largest order of each channel, with its rank and the channel's total.

NODE ranked
SQL >
    SELECT
        channel,
        customer,
        amount,
        row_number() OVER (PARTITION BY channel ORDER BY amount DESC) AS position,
        sum(amount) OVER (PARTITION BY channel) AS channel_total
    FROM orders

NODE endpoint
SQL >
    SELECT * FROM ranked ORDER BY channel, position LIMIT 1 BY channel

TYPE ENDPOINT
"""

READINGS = """\
DESCRIPTION >
    Sensor readings: instants as Unix milliseconds, a local time in the sensor's own time zone, exact values.

SCHEMA >
    `sensor` String `json:$.sensor`,
    `at` DateTime64(3) `json:$.at`,
    `local_at` DateTime64(3, 'Europe/Madrid') `json:$.local_at`,
    `value` Decimal128(6) `json:$.value`,
    `serial` UInt128 `json:$.serial`

ENGINE MergeTree
ENGINE_SORTING_KEY sensor
"""

HOOKS = """\
DESCRIPTION >
    Webhook payloads kept whole, as a JSON column.

SCHEMA >
    `payload` JSON `json:$`

ENGINE MergeTree
ENGINE_SORTING_KEY tuple()
"""

HOOK_KINDS = """\
DESCRIPTION >
    Payloads by a path inside them, and a series of days from ClickHouse's row generator.

NODE kinds
SQL >
    SELECT payload.kind AS kind, count() AS hooks FROM hooks GROUP BY kind ORDER BY kind

NODE endpoint
SQL >
    SELECT kind, hooks, (SELECT groupArray(number) FROM (SELECT number FROM system.numbers LIMIT 3)) AS series
    FROM kinds

TYPE ENDPOINT
"""

# a Kafka connector and a sink, which the server does not run: the build says so and serves the rest
CLICKS_FROM_KAFKA = """\
SCHEMA >
    `url` String `json:$.url`

KAFKA_CONNECTION_NAME shop_kafka
KAFKA_TOPIC clicks
KAFKA_GROUP_ID shop
"""

CLICKS_TO_KAFKA = """\
NODE clicks
SQL >
    SELECT url FROM clicks_from_kafka

TYPE SINK
EXPORT_CONNECTION_NAME shop_kafka
EXPORT_KAFKA_TOPIC clicks_out
EXPORT_SCHEDULE @on-demand
"""

ORDERS_SINCE = """\
DESCRIPTION >
    How many orders were placed since a moment the caller must give.

NODE endpoint
SQL >
    %
    SELECT count() AS orders FROM orders WHERE placed_at >= {{ DateTime(since) }}

TYPE ENDPOINT
"""

LEDGER = """\
SCHEMA >
    `entry_id` String `json:$.id`,
    `amount` UInt32 `json:$.amount`,
    `booked_at` DateTime `json:$.booked_at`

ENGINE MergeTree
ENGINE_SORTING_KEY entry_id
"""

VISITS = """\
SCHEMA >
    `page` String `json:$.page`,
    `referrer` String `json:$.referrer` DEFAULT '',
    `visited_at` DateTime `json:$.visited_at`

ENGINE MergeTree
ENGINE_SORTING_KEY visited_at
ENGINE_TTL visited_at + INTERVAL 100 YEAR
"""

# the changed ledger: `amount` becomes a text with its currency, and the stored rows are carried over by the
# FORWARD_QUERY
LEDGER_EVOLVED = """\
SCHEMA >
    `entry_id` String `json:$.id`,
    `amount` String `json:$.amount`,
    `booked_at` DateTime `json:$.booked_at`

ENGINE MergeTree
ENGINE_SORTING_KEY entry_id

FORWARD_QUERY >
    SELECT entry_id, concat('EUR ', toString(amount)) AS amount, booked_at
"""

# visits keep their rows for one year now, drop `referrer` and take pages that are null: all done in place
VISITS_EVOLVED = """\
SCHEMA >
    `page` Nullable(String) `json:$.page`,
    `visited_at` DateTime `json:$.visited_at`

ENGINE MergeTree
ENGINE_SORTING_KEY visited_at
ENGINE_TTL visited_at + INTERVAL 1 YEAR
"""


ANA, BEN, BEA, CID = (f"6e8bc430-9c3a-11d9-9669-0800200c9a6{n}" for n in range(4))
ORDER_ROWS = [
    {
        "id": ANA,
        "placed_at": "2025-03-01 10:00:00.250",
        "trace": {"at": "2025-03-01 10:00:00.250123456"},
        "shipping": {"shipped_at": "2025-03-02T08:00:00Z"},
        "paid": True,
        "customer": {"name": "Ana"},
        "labels": {"gift": "yes", "source": "ads"},
        "lines": [{"sku": "A1", "qty": "2"}, {"sku": "B2", "qty": "1"}],
        "coupons": ["SPRING"],
        "channel": "web",
        "note": "leave at the door",
        "amount": 120.5,
    },
    {
        "id": BEN,
        "placed_at": "2025-03-01 12:00:00",
        "trace": {"at": "2025-03-01 12:00:00"},
        "shipping": {},
        "paid": False,
        "customer": {"name": "Ben%"},
        "labels": {},
        "lines": [{"sku": "B2", "qty": 3}],
        "channel": "app",
        "placed_on": "2025-02-28",
        "amount": 80,
    },
    {
        "id": BEA,
        "placed_at": "2025-03-02 09:30:00",
        "trace": {"at": "2025-03-02 09:30:00.5"},
        "shipping": {"shipped_at": None},
        "paid": True,
        "customer": {"name": "Bea"},
        "labels": {"gift": "no"},
        "lines": [{"sku": "C3"}],
        "channel": "app",
        "amount": 95.25,
    },
    {
        "id": CID,
        "placed_at": "2025-03-01 11:00:00",
        "trace": {"at": "2025-03-01 11:00:00"},
        "paid": True,
        "customer": {"name": "Cid"},
        "labels": {},
        "lines": [],
        "channel": "phone",
        "amount": 500,
    },
]
# placed more than ENGINE_TTL's 50 years ago: it fits the schema, but its rows are past their lifetime
EXPIRED_ROW = {**ORDER_ROWS[0], "id": "6e8bc430-9c3a-11d9-9669-0800200c9a70", "placed_at": "1971-06-01 00:00:00"}
BAD_ROWS = [  # (row, the column it fails on)
    ({**ORDER_ROWS[0], "id": "not-a-uuid"}, "order_id"),
    ({**ORDER_ROWS[0], "paid": "yes"}, "paid"),
    ({**ORDER_ROWS[0], "lines": "A1"}, "lines"),
]
ACCOUNT_ROWS = [
    {"account_id": "a", "plan": "free", "version": 1},
    {"account_id": "a", "plan": "pro", "version": 2},
    {"account_id": "b", "plan": "free", "version": 1},
    {"account_id": "b", "plan": "free", "version": 2, "deleted": 1},
    {"account_id": "c", "plan": "team", "version": 1},
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The shop's server, its rows sent once; with the Events API's answer to the orders."""
    base = tmp_path_factory.mktemp("shop")
    project = write_files(
        base / "project",
        {
            # datasources and endpoints in nested folders, as web_vitals/endpoints/ in Tinybird's starter kit
            "datasources/landing/orders.datasource": ORDERS,
            "datasources/accounts.datasource": ACCOUNTS,
            "endpoints/live_accounts.pipe": LIVE_ACCOUNTS,
            "endpoints/search_orders.pipe": SEARCH_ORDERS,
            "web_vitals/endpoints/top_order_per_channel.pipe": TOP_ORDER_PER_CHANNEL,
            "endpoints/orders_since.pipe": ORDERS_SINCE,
            "datasources/readings.datasource": READINGS,
            "datasources/hooks.datasource": HOOKS,
            "endpoints/hook_kinds.pipe": HOOK_KINDS,
            "datasources/clicks_from_kafka.datasource": CLICKS_FROM_KAFKA,
            "pipes/clicks_to_kafka.pipe": CLICKS_TO_KAFKA,
            "datasources/ledger.datasource": LEDGER,
            "datasources/visits.datasource": VISITS,
            ".env": "hidden_channel=phone\n",
        },
    )
    server = ServerProcess(project, base / "data")
    target = server.start()
    sent = target.send("orders", [*ORDER_ROWS, EXPIRED_ROW, *(row for row, _ in BAD_ROWS)])
    assert sent.status_code == 200, sent.text
    assert target.send("accounts", ACCOUNT_ROWS).json() == {"successful_rows": 5, "quarantined_rows": 0}
    yield target, sent.json(), project
    server.stop()


@pytest.fixture
def shop(served):
    return served[0]


@pytest.fixture
def orders_sent(served) -> dict:
    return served[1]


def test_types_and_json_paths_are_stored_as_tinybird_stores_them(shop):
    rows = shop.sql(
        "SELECT toString(order_id) AS id, placed_at, traced_at, shipped_at, paid, customer, labels, lines, skus, "
        "coupons, channel, placed_on, note, amount FROM orders ORDER BY placed_at"
    )
    # DateTime64(3) keeps milliseconds and DateTime64(9) nanoseconds
    # (https://www.tinybird.co/docs/sql-reference/data-types/datetime64); a Nullable column stores null for a null
    # or missing value; `$.lines[:].sku` is the sku of every line; a DEFAULT fills a missing value, and may read
    # the row's other columns (`toDate(placed_at)`), as ClickHouse computes a DEFAULT (Tinybird's datasource-files
    # page shows DEFAULT values; what they may read is undocumented there); a Map(String, String) takes a JSON
    # number as its text (undocumented: ClickHouse's JSONExtract)
    assert rows == [
        {
            "id": ANA,
            "placed_at": "2025-03-01 10:00:00.250",
            "traced_at": "2025-03-01 10:00:00.250123456",
            "shipped_at": "2025-03-02 08:00:00.000",
            "paid": True,
            "customer": "Ana",
            "labels": {"gift": "yes", "source": "ads"},
            "lines": [{"sku": "A1", "qty": "2"}, {"sku": "B2", "qty": "1"}],
            "skus": ["A1", "B2"],
            "coupons": ["SPRING"],
            "channel": "web",
            "placed_on": "2025-03-01",
            "note": "leave at the door",
            "amount": 120.5,
        },
        {
            "id": CID,
            "placed_at": "2025-03-01 11:00:00.000",
            "traced_at": "2025-03-01 11:00:00.000000000",
            "shipped_at": None,
            "paid": True,
            "customer": "Cid",
            "labels": {},
            "lines": [],
            "skus": [],
            "coupons": [],
            "channel": "phone",
            "placed_on": "2025-03-01",
            "note": "",
            "amount": 500,
        },
        {
            "id": BEN,
            "placed_at": "2025-03-01 12:00:00.000",
            "traced_at": "2025-03-01 12:00:00.000000000",
            "shipped_at": None,
            "paid": False,
            "customer": "Ben%",
            "labels": {},
            "lines": [{"sku": "B2", "qty": "3"}],
            "skus": ["B2"],
            "coupons": [],
            "channel": "app",
            "placed_on": "2025-02-28",
            "note": "",
            "amount": 80,
        },
        {
            "id": BEA,
            "placed_at": "2025-03-02 09:30:00.000",
            "traced_at": "2025-03-02 09:30:00.500000000",
            "shipped_at": None,
            "paid": True,
            "customer": "Bea",
            "labels": {"gift": "no"},
            "lines": [{"sku": "C3"}],
            "skus": ["C3"],
            "coupons": [],
            "channel": "app",
            "placed_on": "2025-03-02",
            "note": "",
            "amount": 95.25,
        },
    ]


def test_datetime64_ticks_and_time_zones_and_exact_decimals(shop):
    # https://www.tinybird.co/docs/sql-reference/data-types/datetime64: "integer values are treated as Unix
    # timestamps (in UTC) scaled by the precision, while string values are parsed according to the column's defined
    # timezone"; 1740823200250 ms is 2025-03-01 10:00:00.250 UTC, and Madrid is UTC+1 in March
    # https://www.tinybird.co/docs/sql-reference: a Decimal of 15 digits or more is sent as a string, which a JSON
    # number (a double) would round, and is stored exactly
    # a UInt128 takes integers beyond 64 bits (undocumented by Tinybird: ClickHouse's type)
    rows = [
        {
            "sensor": "s1",
            "at": 1740823200250,
            "local_at": "2025-03-01 10:00:00",
            "value": "123456789012.123456",
            "serial": 2**100,
        }
    ]
    assert shop.send("readings", rows).json() == {"successful_rows": 1, "quarantined_rows": 0}
    stored = shop.sql(
        "SELECT at, local_at, toString(local_at, 'UTC') AS utc, toString(value) AS value, toString(serial) AS serial "
        "FROM readings"
    )
    assert stored == [
        {
            "at": "2025-03-01 10:00:00.250",
            "local_at": "2025-03-01 10:00:00.000",
            "utc": "2025-03-01 09:00:00.000",
            "value": "123456789012.123456",
            "serial": str(2**100),
        }
    ]


def test_values_that_do_not_fit_their_type_are_quarantined(shop, orders_sent):
    # https://www.tinybird.co/docs/v2/get-data-in/quarantine: a row whose value does not fit its column goes to
    # <datasource>_quarantine with the column named; the others land
    assert orders_sent["quarantined_rows"] == len(BAD_ROWS)
    errors = shop.sql("SELECT c__error_column FROM orders_quarantine ORDER BY insertion_date")
    assert sorted(e["c__error_column"][0] for e in errors) == sorted(column for _, column in BAD_ROWS)


def test_rows_past_the_ttl_are_dropped_at_ingest(shop, orders_sent):
    # Tinybird's TTL example (tinybirdco/use-case-examples, change_data_source_ttl) shows rows already past ENGINE_TTL
    # are not stored; that they count as successful rows (they fit the schema) is undocumented: ClickHouse accepts
    # them and its TTL removes them
    assert orders_sent["successful_rows"] == len(ORDER_ROWS) + 1
    assert count(shop, "orders", "toYear(placed_at) = 1971") == 0
    assert count(shop, "orders_quarantine") == len(BAD_ROWS)


def test_engine_keys_settings_codecs_and_indexes_make_the_table(shop):
    # the datasource-files page: ENGINE_PARTITION_KEY, ENGINE_SORTING_KEY, ENGINE_PRIMARY_KEY, ENGINE_TTL,
    # ENGINE_SETTINGS and INDEXES become the table's own; a column's CODEC is ClickHouse's (undocumented by Tinybird)
    [table] = shop.sql("SELECT sorting_key, primary_key, engine_full FROM system.tables WHERE name = 'orders'")
    partitions = shop.sql("SELECT DISTINCT partition FROM system.parts WHERE table = 'orders' AND active")
    assert partitions == [{"partition": "2025"}]  # toYear(placed_at): the expired row of 1971 made none
    assert table["sorting_key"] == "channel, placed_at, order_id"
    assert table["primary_key"] == "channel, placed_at"
    assert "TTL toDateTime(placed_at) + toIntervalYear(50)" in table["engine_full"]
    assert "index_granularity = 1024" in table["engine_full"]
    codecs = shop.sql(
        "SELECT name, compression_codec FROM system.columns WHERE table = 'orders' AND compression_codec != ''"
    )
    assert {c["name"]: c["compression_codec"] for c in codecs} == {
        "note": "CODEC(ZSTD(3))",
        "amount": "CODEC(Gorilla(8), LZ4)",  # ClickHouse names Gorilla's width: a Float64's 8 bytes
    }
    indexes = shop.sql("SELECT name, type, expr, granularity FROM system.data_skipping_indices WHERE table = 'orders'")
    assert indexes == [{"name": "idx_customer", "type": "bloom_filter", "expr": "customer", "granularity": 4}]


def test_final_shows_each_replacing_merge_tree_row_at_its_latest_version_without_deleted_ones(shop):
    # ENGINE_VER picks the latest version of each sorting key (datasource-files page); ENGINE_IS_DELETED is
    # ClickHouse's is_deleted: a key whose latest version is marked deleted is gone under FINAL
    # (https://clickhouse.com/docs/engines/table-engines/mergetree-family/replacingmergetree)
    assert shop.data("live_accounts") == [
        {"account_id": "a", "plan": "pro", "version": 2},
        {"account_id": "c", "plan": "team", "version": 1},
    ]


# https://www.tinybird.co/docs/cli/advanced-templates (the page the `tinybird` package's template errors link to):
# columns() and column() name columns (quoted: a value is never SQL), Array(x, 'String') is a list parameter,
# split_to_array splits a text at commas, defined() tells a given parameter, sql_unescape(String(x), '%') keeps `%`
# a LIKE wildcard (String alone escapes it), date_diff_in_hours counts hours between two DateTimes and error()
# answers 400 with its message; tb_secret reads a workspace secret (a project's .env is loaded as secrets, as in
# Tinybird Local), here hiding the phone channel
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {},
            [
                {"customer": "Ana", "channel": "web", "measure": 120.5},
                {"customer": "Bea", "channel": "app", "measure": 95.25},
                {"customer": "Ben%", "channel": "app", "measure": 80},
            ],
        ),
        (
            {"fields": "customer", "measure": "placed_on", "channels": "app,web"},
            [
                {"customer": "Bea", "measure": "2025-03-02"},
                {"customer": "Ana", "measure": "2025-03-01"},
                {"customer": "Ben%", "measure": "2025-02-28"},
            ],
        ),
        (
            {"fields": "customer", "sku_list": "C3,A1"},
            [{"customer": "Ana", "measure": 120.5}, {"customer": "Bea", "measure": 95.25}],
        ),
        (
            {"fields": "customer", "customer_like": "Be%"},
            [{"customer": "Bea", "measure": 95.25}, {"customer": "Ben%", "measure": 80}],
        ),
        ({"fields": "customer", "customer_exact": "Be%"}, []),
        ({"fields": "customer", "customer_exact": "Ben%"}, [{"customer": "Ben%", "measure": 80}]),
        (
            {"fields": "customer", "start": "2025-03-01 00:00:00", "end": "2025-03-01 23:59:59"},
            [{"customer": "Ana", "measure": 120.5}, {"customer": "Ben%", "measure": 80}],
        ),
    ],
)
def test_template_functions_render_as_tinybird_renders_them(shop, params, expected):
    assert shop.data("search_orders", params) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2025-03-01 00:00:00", "end": "2025-03-05 00:00:00"}, "at most 48 hours between start and end"),
        ({"measure": "amount) AS measure FROM system.tables --"}, "amount) AS measure FROM system.tables --"),
    ],
)
def test_template_errors_are_a_400_naming_the_problem(shop, params, message):
    response = shop.pipe("search_orders", params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_typed_parameter_without_a_value_or_default_is_required(shop):
    # undocumented: Tinybird's answer as the recorded `tb test` cases of Tinybird's own logs-explorer-template show
    # it (tests/log_timeseries.yaml: "start_date (DateTime) query param is required", a 400)
    response = shop.pipe("orders_since")
    assert response.status_code == 400
    assert response.json() == {"error": "since (DateTime) query param is required"}
    assert shop.data("orders_since", {"since": "2025-03-01 12:00:00"}) == [{"orders": 2}]


def test_window_functions_and_limit_by_in_an_endpoint_of_a_nested_folder(shop):
    # window functions and LIMIT n BY are ClickHouse SELECT clauses, which Tinybird's SQL reference supports in full
    # (https://www.tinybird.co/docs/sql-reference); the phone channel is not hidden here: no tb_secret
    assert shop.data("top_order_per_channel") == [
        {"channel": "app", "customer": "Bea", "amount": 95.25, "position": 1, "channel_total": 175.25},
        {"channel": "phone", "customer": "Cid", "amount": 500, "position": 1, "channel_total": 500},
        {"channel": "web", "customer": "Ana", "amount": 120.5, "position": 1, "channel_total": 120.5},
    ]


def test_json_paths_group_and_generator_tables_serve(shop):
    # https://www.tinybird.co/docs/sql-reference/data-types/json: a JSON column's fields are read as subcolumns;
    # grouping by one is what Tinybird's own tinynest project does, and `system.numbers` generates its series
    rows = [{"kind": "push", "n": 1}, {"kind": "issue"}, {"kind": "push", "extra": {"a": 1}}]
    assert shop.send("hooks", rows).json() == {"successful_rows": 3, "quarantined_rows": 0}
    assert shop.data("hook_kinds") == [
        {"kind": "issue", "hooks": 1, "series": [0, 1, 2]},
        {"kind": "push", "hooks": 2, "series": [0, 1, 2]},
    ]


def test_connectors_and_sinks_are_named_as_not_served_and_the_rest_is(shop):
    # as the README lists them: what the server does not run is said at build, never skipped in silence
    built = shop.http.post(shop.url("/v0/build"), headers=shop.auth())
    assert built.status_code == 200, built.text
    assert {
        "datasource clicks_from_kafka: KAFKA_CONNECTION_NAME is not served (no connector runs here): "
        "send its rows through the Events API or the Data Sources API",
        "pipe clicks_to_kafka: TYPE SINK is not served: the pipe is not run",
    } <= set(built.json()["changes"])
    assert shop.send("clicks_from_kafka", [{"url": "/a"}]).json() == {"successful_rows": 1, "quarantined_rows": 0}


def test_an_array_jsonpath_needs_an_array_column(tmp_path):
    broken = ORDERS.replace("`skus` Array(String) `json:$.lines[:].sku`", "`skus` String `json:$.lines[:].sku`")
    write_files(tmp_path, {"datasources/orders.datasource": broken})
    with pytest.raises(ProjectError, match=r"column skus: jsonpath \$\.lines\[:\]\.sku reads an array"):
        load_project(tmp_path)


def test_datasources_with_rows_evolve_through_forward_query_and_a_changed_ttl(served):
    shop, _, project = served
    entries = [
        {"id": "e1", "amount": 10, "booked_at": "2025-01-01 00:00:00"},
        {"id": "e2", "amount": 25, "booked_at": "2025-01-02 00:00:00"},
    ]
    assert shop.send("ledger", entries).json()["successful_rows"] == 2
    visits = [
        {"page": "/old", "visited_at": "2000-01-01 00:00:00"},
        {"page": "/new", "visited_at": "2099-01-01 00:00:00"},
    ]
    assert shop.send("visits", visits).json()["successful_rows"] == 2
    # a FORWARD_QUERY that cannot run refuses the build, naming the datasource, and the live rows stay as they are
    write_files(
        project, {"datasources/ledger.datasource": LEDGER_EVOLVED.replace("toString(amount)", "toString(price)")}
    )
    refused = shop.http.post(shop.url("/v0/build"), headers=shop.auth())
    assert refused.status_code == 400 and "datasource ledger" in refused.json()["error"], refused.text
    assert shop.sql("SELECT entry_id, amount FROM ledger ORDER BY entry_id") == [
        {"entry_id": "e1", "amount": 10},
        {"entry_id": "e2", "amount": 25},
    ]
    write_files(
        project, {"datasources/ledger.datasource": LEDGER_EVOLVED, "datasources/visits.datasource": VISITS_EVOLVED}
    )
    built = shop.http.post(shop.url("/v0/build"), headers=shop.auth())
    assert built.status_code == 200, built.text
    assert {"datasource ledger: forward", "datasource visits: extend"} <= set(built.json()["changes"])
    # https://www.tinybird.co/docs/forward/test-and-deploy/evolve-data-source: a change the live rows cannot take as
    # they are is carried out by the FORWARD_QUERY, run over the live data source
    assert shop.sql("SELECT entry_id, amount FROM ledger ORDER BY entry_id") == [
        {"entry_id": "e1", "amount": "EUR 10"},
        {"entry_id": "e2", "amount": "EUR 25"},
    ]
    sent = shop.send("ledger", [json.dumps({"id": "e3", "amount": "EUR 5", "booked_at": "2025-01-03 00:00:00"})])
    assert sent.json() == {"successful_rows": 1, "quarantined_rows": 0}
    # the same page: a TTL is added, modified or removed by an ALTER, in place (the rows it now expires are gone),
    # and so are a column removed and a column made Nullable
    assert shop.sql("SELECT * FROM visits") == [{"page": "/new", "visited_at": "2099-01-01 00:00:00"}]
    assert shop.send("visits", [{"page": None, "visited_at": "2099-01-02 00:00:00"}]).json()["successful_rows"] == 1
    assert shop.sql("SELECT page FROM visits ORDER BY visited_at") == [{"page": "/new"}, {"page": None}]

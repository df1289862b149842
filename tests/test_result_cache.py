"""The result cache (issue 18): identical reads between two writes are answered from it, and never stale.

A small project written here, served with a small `result_cache_bytes` so that eviction shows: `hits` feeds the
roll-up `hits_by_tenant` through a materialization; a copy pipe writes `copied`, which feeds `copied_counts`.
`Server-Timing`'s `cache` entry says hit, miss or bypass.
"""

from __future__ import annotations

import json
import re
import textwrap
import threading
import time
from pathlib import Path

import jwt
import pytest
import requests
from conftest import ServerProcess, Target, token_values, write_files

from usage_analytics.bench.cache import measure
from usage_analytics.local.project import Column, Datasource
from usage_analytics.local.resultcache import Entry, ReadCache, ResultCache

pytestmark = pytest.mark.embedded

CACHE_BYTES = 64 * 1024  # entries of at most 4 KB (a sixteenth)
FILES = {
    "datasources/hits.datasource": """\
        SCHEMA >
            `id` Int32 `json:$.id`,
            `tenant` String `json:$.tenant`,
            `n` Int32 `json:$.n`

        ENGINE "MergeTree"
        ENGINE_SORTING_KEY "tenant, id"
        """,
    "datasources/hits_by_tenant.datasource": """\
        SCHEMA >
            `tenant` String,
            `rows` AggregateFunction(count),
            `total` AggregateFunction(sum, Int32)

        ENGINE "AggregatingMergeTree"
        ENGINE_SORTING_KEY "tenant"
        """,
    "pipes/count_hits.pipe": """\
        NODE counted
        SQL >
            SELECT tenant, countState() AS rows, sumState(n) AS total FROM hits GROUP BY tenant

        TYPE MATERIALIZED
        DATASOURCE hits_by_tenant
        """,
    "datasources/copied.datasource": """\
        SCHEMA >
            `tenant` String,
            `n` Int32

        ENGINE "MergeTree"
        ENGINE_SORTING_KEY "tenant"
        """,
    "datasources/copied_counts.datasource": """\
        SCHEMA >
            `tenant` String,
            `rows` AggregateFunction(count)

        ENGINE "AggregatingMergeTree"
        ENGINE_SORTING_KEY "tenant"
        """,
    "pipes/count_copied.pipe": """\
        NODE counted
        SQL >
            SELECT tenant, countState() AS rows FROM copied GROUP BY tenant

        TYPE MATERIALIZED
        DATASOURCE copied_counts
        """,
    "pipes/copy_hits.pipe": """\
        NODE picked
        SQL >
            %
            SELECT tenant, n FROM hits WHERE tenant = {{ String(tenant, 'a', description="The tenant copied") }}

        TYPE COPY
        TARGET_DATASOURCE copied
        """,
    "endpoints/hits_of.pipe": """\
        TOKEN reader READ

        NODE endpoint
        SQL >
            %
            SELECT count() AS rows, sum(n) AS total FROM hits
            WHERE tenant = {{ String(tenant, 'a', description="The tenant counted") }}

        TYPE ENDPOINT
        """,
    "endpoints/tenants.pipe": """\
        TOKEN other READ

        NODE endpoint
        SQL >
            %
            SELECT countMerge(rows) AS rows, sumMerge(total) AS total FROM hits_by_tenant
            WHERE tenant = {{ String(tenant, 'a', description="The tenant counted") }}

        TYPE ENDPOINT
        """,
    "endpoints/copied_rows.pipe": """\
        NODE endpoint
        SQL >
            SELECT countMerge(rows) AS rows FROM copied_counts

        TYPE ENDPOINT
        """,
    "endpoints/clocked.pipe": """\
        NODE endpoint
        SQL >
            %
            SELECT count() AS rows,
            {% if defined(fn) and fn == 'now' %} now()
            {% elif defined(fn) and fn == 'today' %} toDate(today())
            {% elif defined(fn) and fn == 'bare' %} CURRENT_TIMESTAMP
            {% elif defined(fn) and fn == 'rand' %} rand()
            {% elif defined(fn) and fn == 'uuid' %} generateUUIDv4()
            {% else %} 'now()'
            {% end %} AS v
            FROM hits
            WHERE tenant = {{ String(fn, 'none', description="Which function the answer shows") }}

        TYPE ENDPOINT
        """,
    "endpoints/wide.pipe": """\
        NODE endpoint
        SQL >
            %
            SELECT repeat('x', {{ Int32(width, 10, description="Characters in the answer") }}) AS s

        TYPE ENDPOINT
        """,
    "endpoints/everything.pipe": """\
        NODE endpoint
        SQL >
            SELECT * FROM hits WHERE tenant = 'a' ORDER BY id

        TYPE ENDPOINT
        """,
}
SEED = [{"id": 1, "tenant": "a", "n": 1}, {"id": 2, "tenant": "a", "n": 2}, {"id": 3, "tenant": "b", "n": 10}]


def write_project(folder: Path, files: dict[str, str] = FILES) -> Path:
    write_files(folder, files)
    (folder / "fixtures").mkdir(exist_ok=True)
    (folder / "fixtures" / "hits.ndjson").write_text(ndjson(SEED).decode())
    return folder


def ndjson(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(row) for row in rows).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("resultcache")
    server = ServerProcess(write_project(root / "project"), root / "data")
    server.extra_args = ["--limit", f"result_cache_bytes={CACHE_BYTES}"]
    yield server.start()
    server.stop()


def cache(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    return re.search(r'cache;desc="(\w+)"', response.headers["Server-Timing"]).group(1)


def read(target: Target, pipe: str, fmt: str = "json", token: str | None = None, **params) -> tuple[object, str]:
    """An endpoint's answer (its rows as (rows, total) pairs for JSON) and whether the cache had it."""
    response = target.pipe(pipe, params, fmt=fmt, token=token)
    if fmt != "json":
        return response.text, cache(response)
    answer = response.json()
    assert set(answer["statistics"]) == {"elapsed", "rows_read", "bytes_read"}
    return [tuple(int(row[c]) for c in ("rows", "total") if c in row) for row in answer["data"]], cache(response)


def counted(target: Target, tenant: str) -> tuple[tuple, str, tuple, str]:
    """`tenant`'s rows and total read directly from `hits` and through the roll-up, each with its cache status."""
    (direct,), direct_cache = read(target, "hits_of", tenant=tenant)
    (rolled,), rolled_cache = read(target, "tenants", tenant=tenant)
    return direct, direct_cache, rolled, rolled_cache


def test_a_repeated_read_is_a_hit_with_the_same_answer_in_each_format(served):
    first = served.pipe("hits_of", {"tenant": "a"})
    again = served.pipe("hits_of", {"tenant": "a"})
    assert (cache(first), cache(again)) == ("miss", "hit")
    assert again.json()["data"] == first.json()["data"] == [{"rows": 2, "total": 3}]
    assert again.json()["meta"] == first.json()["meta"] and again.json()["rows"] == 1
    # a hit's statistics: its own time, and the rows and bytes the query it keeps read
    kept, ran = again.json()["statistics"], first.json()["statistics"]
    assert (kept["rows_read"], kept["bytes_read"]) == (ran["rows_read"], ran["bytes_read"])
    # each format is an answer of its own: a miss first, then a hit of that format
    for fmt, expected in (("csv", '"rows","total"\n2,3\n'), ("ndjson", '{"rows":2,"total":3}\n')):
        assert read(served, "hits_of", fmt, tenant="a") == (expected, "miss")
        assert read(served, "hits_of", fmt, tenant="a") == (expected, "hit")


def write_events(target: Target, tenant: str) -> tuple[int, int]:
    assert target.send("hits", [{"id": 100, "tenant": tenant, "n": 4}]).status_code == 200
    return 3, 7


def import_file(target: Target, params: dict, rows: list[dict]) -> None:
    files = {"ndjson": ("rows.ndjson", ndjson(rows))}
    answer = target.http.post(
        target.url("/v0/datasources"), params={"name": "hits", **params}, files=files, headers=target.auth()
    )
    assert answer.status_code == 200, answer.text


def append_import(target: Target, tenant: str) -> tuple[int, int]:
    import_file(target, {"mode": "append", "format": "ndjson"}, [{"id": 100, "tenant": tenant, "n": 4}])
    return 3, 7


def replace_all(target: Target, tenant: str) -> tuple[int, int]:
    import_file(target, {"mode": "replace", "format": "ndjson"}, [*SEED, {"id": 100, "tenant": tenant, "n": 4}])
    return 1, 4


def replace_where(target: Target, tenant: str) -> tuple[int, int]:
    rows = [{"id": 100, "tenant": tenant, "n": 4}, {"id": 101, "tenant": "elsewhere", "n": 50}]
    import_file(target, {"mode": "replace", "format": "ndjson", "replace_condition": f"tenant = '{tenant}'"}, rows)
    return 1, 4


def delete_where(target: Target, tenant: str) -> tuple[int, int]:
    url = target.url("/v0/datasources/hits/delete")
    answer = target.http.post(url, data={"delete_condition": f"tenant = '{tenant}' AND id = 1"}, headers=target.auth())
    assert answer.status_code == 200, answer.text
    return 1, 2


def truncate(target: Target, tenant: str) -> tuple[int, int]:
    answer = target.http.post(target.url("/v0/datasources/hits/truncate"), headers=target.auth())
    assert answer.status_code in (200, 204), answer.text
    return 0, 0


@pytest.mark.parametrize("write", [write_events, append_import, replace_all, replace_where, delete_where, truncate])
def test_every_kind_of_write_is_seen_by_the_next_read_direct_and_through_the_rollup(served, write):
    tenant = f"t_{write.__name__}"
    assert served.send("hits", [{"id": i, "tenant": tenant, "n": i} for i in (1, 2)]).status_code == 200
    counted(served, tenant)
    assert counted(served, tenant) == ((2, 3), "hit", (2, 3), "hit")
    expected = write(served, tenant)
    direct, direct_cache, rolled, rolled_cache = counted(served, tenant)
    assert (direct, direct_cache, rolled_cache) == (expected, "miss", "miss")
    # a truncate leaves the roll-ups as they are, as in Tinybird: the answer over it is asked again all the same
    assert rolled == ((2, 3) if write is truncate else expected)
    if write is truncate:
        assert served.send("hits", SEED).status_code == 200


def copy(target: Target, tenant: str) -> None:
    answer = target.http.post(target.url("/v0/pipes/copy_hits/copy"), params={"tenant": tenant}, headers=target.auth())
    assert answer.status_code == 200, answer.text


def test_a_copy_is_seen_by_readers_of_its_target_and_of_what_the_target_feeds(served):
    (before,), _ = read(served, "copied_rows")
    assert read(served, "copied_rows") == ([before], "hit")
    copy(served, "b")  # one row of tenant b
    assert read(served, "copied_rows") == ([(before[0] + 1,)], "miss")


@pytest.mark.parametrize("fn", ["now", "today", "bare", "rand", "uuid"])
def test_answers_that_depend_on_the_clock_or_chance_are_never_kept(served, fn):
    assert [read(served, "clocked", fn=fn)[1] for _ in range(2)] == ["bypass", "bypass"]


def test_the_list_of_non_deterministic_functions_is_kept_per_chdb_build_and_a_bad_copy_is_asked_again(
    tmp_path, monkeypatch
):
    """The list comes from ClickHouse once per chDB build, into the cache folder; what that file says is what the
    server goes by, and a file that does not parse is replaced by a fresh answer."""
    monkeypatch.setenv("USAGE_ANALYTICS_CACHE", str(tmp_path / "cache"))
    server = ServerProcess(write_project(tmp_path / "project"), tmp_path / "data")

    def clocked_twice() -> list[str]:
        target = server.start()
        try:
            return [read(target, "clocked", fn="now")[1] for _ in range(2)]
        finally:
            server.stop()

    assert clocked_twice() == ["bypass", "bypass"]
    (kept,) = (tmp_path / "cache/functions").iterdir()
    names = json.loads(kept.read_text())
    assert {"now", "today", "rand", "generateUUIDv4"} <= set(names)
    kept.write_text(json.dumps([name for name in names if name != "now"]))
    assert clocked_twice() == ["miss", "hit"]  # the kept list decides: not asked again
    kept.write_text("{not json")
    assert clocked_twice() == ["bypass", "bypass"]
    assert json.loads(kept.read_text()) == names


def test_a_function_named_in_a_string_is_no_reason_to_bypass(served):
    assert [read(served, "clocked", fn="none")[1] for _ in range(2)] == ["miss", "hit"]


def test_parameters_tokens_and_fixed_params_each_get_their_own_answer(served):
    tokens = token_values(served)
    assert read(served, "hits_of", tenant="a") in (([(2, 3)], "miss"), ([(2, 3)], "hit"))
    assert read(served, "hits_of", tenant="b") == ([(1, 10)], "miss")
    # a token that may not read the pipe is refused, whatever the cache holds
    assert served.pipe("hits_of", {"tenant": "a"}, token=tokens["other"]).status_code == 403
    # a token that may read it gets what the same SQL answers: the same rows, whoever asked first
    assert read(served, "hits_of", token=tokens["reader"], tenant="a") == ([(2, 3)], "hit")
    workspace = served.http.get(served.url("/v0/workspace"), headers=served.auth()).json()["id"]

    def minted(tenant: str) -> str:
        scope = {"type": "PIPES:READ", "resource": "hits_of", "fixed_params": {"tenant": tenant}}
        claims = {"workspace_id": workspace, "name": f"jwt_{tenant}", "exp": int(time.time()) + 600, "scopes": [scope]}
        return jwt.encode(claims, served.token, algorithm="HS256")

    # a JWT's fixed tenant wins over the one asked for: b's answer, never a's kept one
    assert read(served, "hits_of", token=minted("b"), tenant="a") == ([(1, 10)], "hit")
    assert read(served, "hits_of", token=minted("nobody"), tenant="a") == ([(0, 0)], "miss")
    assert served.pipe("tenants", {"tenant": "a"}, token=minted("a")).status_code == 403


def test_sql_queries_are_kept_too_but_never_over_system_tables(served):
    def sql(q: str) -> tuple[str, str]:
        answer = served.http.get(served.url("/v0/sql"), params={"q": q}, headers=served.auth())
        return answer.text, cache(answer)

    q = "SELECT count() AS n FROM hits WHERE tenant = 'b' FORMAT JSONEachRow"
    assert sql(q) == ('{"n":1}\n', "miss")
    assert sql(q) == ('{"n":1}\n', "hit")
    assert served.send("hits", [{"id": 200, "tenant": "b", "n": 0}]).status_code == 200
    assert sql(q) == ('{"n":2}\n', "miss")
    assert [sql("SELECT count() FROM system.one")[1] for _ in range(2)] == ["bypass", "bypass"]


def test_an_acknowledged_write_is_seen_by_every_read_that_follows_it(served):
    """One writer appends rows one at a time; after each acknowledgement its own next reads, and every read any
    other client starts later, count that row."""
    tenant, acknowledged, stale, statuses, stop = "race", [0], [], [], threading.Event()

    def reader() -> None:
        http = requests.Session()
        while not statuses or not stop.is_set():
            floor = acknowledged[0]
            answer = http.get(served.url("/v0/pipes/hits_of.json"), params={"tenant": tenant}, headers=served.auth())
            rows = answer.json()["data"][0]["rows"]
            statuses.append(cache(answer))
            if rows < floor:
                stale.append((floor, rows))

    readers = [threading.Thread(target=reader)]
    for thread in readers:
        thread.start()
    try:
        for i in range(1, 11):
            assert served.send("hits", [{"id": 1000 + i, "tenant": tenant, "n": 1}]).status_code == 200
            acknowledged[0] = i
            (direct,), _ = read(served, "hits_of", tenant=tenant)
            assert direct == (i, i)
            assert read(served, "hits_of", tenant=tenant) == ([(i, i)], "hit")  # no write since: kept
            assert read(served, "tenants", tenant=tenant)[0] == [(i, i)]
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert stale == [] and statuses


def test_the_cache_holds_at_most_its_bytes(served):
    assert [read(served, "wide", width="100")[1] for _ in range(2)] == ["miss", "hit"]
    # larger than a sixteenth of the budget: answered, never kept
    big = served.pipe("wide", {"width": "5000"})
    assert big.json()["data"] == [{"s": "x" * 5000}] and cache(big) == "bypass"
    assert cache(served.pipe("wide", {"width": "5000"})) == "bypass"
    # 40 answers of about 2.5 KB each are more than the 64 KB budget: the least recently used ones go
    assert [read(served, "wide", width=str(2000 + i))[1] for i in range(40)] == ["miss"] * 40
    assert read(served, "wide", width="100")[1] == "miss"
    assert read(served, "wide", width="2039")[1] == "hit"


def test_the_benchmark_times_hits_and_misses_apart(served):
    calls = [("hits_of", {"tenant": "a"}), ("tenants", {"tenant": "a"}), ("clocked", {"fn": "now"})]
    result = measure(served.base_url, served.token, calls, clients=2, rounds=3, invalidate_every=2)
    # rounds 0 and 2 follow a build: there each call's first answer is a miss (both clients' at worst)
    assert 4 <= result["miss"]["calls"] <= 8 and result["hit"]["calls"] == 12 - result["miss"]["calls"]
    assert result["bypass"]["calls"] == 6 and result["hit_steady"]["calls"] == 4
    assert set(result["endpoints"]) == {"hits_of", "tenants", "clocked"}


def build(target: Target, files: dict[str, str], route: str = "/v1/build", **params: str) -> dict:
    """The project of `files` built (`tb build`) or deployed (`tb deploy`) into the server's workspace."""
    parts = [("context://", ("cli-version", "1.0.0"))] + [
        ("data_project://", (name, textwrap.dedent(text))) for name, text in files.items()
    ]
    built = target.http.post(target.url(route), files=parts, params=params, headers=target.auth())
    assert built.status_code == 200 and built.json()["result"] == "success", built.text
    return built.json()


EXTRA = "`extra` Int32 `json:$.extra` DEFAULT 7"


def with_column(files: dict[str, str], column: str) -> dict[str, str]:
    """`files` with `column` added at the end of `hits`."""
    hits = files["datasources/hits.datasource"]
    last = hits.index("\n\n        ENGINE")
    return {**files, "datasources/hits.datasource": f"{hits[:last]},\n            {column}{hits[last:]}"}


def test_a_build_that_changes_a_datasource_or_a_pipe_is_seen_by_the_next_read(served):
    cache(served.pipe("everything"))
    kept = served.pipe("everything")
    assert cache(kept) == "hit"
    first = kept.json()["data"][0]
    assert read(served, "hits_of", tenant="a")[0] == [(2, 3)]
    files = with_column(FILES, EXTRA)
    build(served, {**files, "endpoints/hits_of.pipe": FILES["endpoints/hits_of.pipe"].replace("sum(n)", "sum(n) + 1")})
    # the same SQL over a changed table: asked again
    after = served.pipe("everything")
    assert cache(after) == "miss" and after.json()["data"][0] == {**first, "extra": 7}
    assert read(served, "hits_of", tenant="a") == ([(2, 4)], "miss")
    # the pipe as it was: the SQL of an answer kept before the builds, asked again
    build(served, files)
    assert read(served, "hits_of", tenant="a") == ([(2, 3)], "miss")


def test_a_deployment_promoted_is_seen_by_the_next_read(served):
    served.pipe("everything")
    assert cache(served.pipe("everything")) == "hit"
    files = with_column(with_column(FILES, EXTRA), "`more` String `json:$.more` DEFAULT 'm'")
    assert build(served, files, "/v1/deploy", auto_promote="true")["deployment"]["live"]
    after = served.pipe("everything")
    assert cache(after) == "miss" and {row["more"] for row in after.json()["data"]} == {"m"}


DATASOURCES = {
    name: Datasource(name, tuple(Column(c, "String", None, None, False) for c in columns), "MergeTree", ())
    for name, columns in {"hits": ["id", "tenant", "user"], "other": ["x"]}.items()
}


@pytest.mark.parametrize(
    ("sql", "sources"),
    [
        ("SELECT count() FROM tb.hits WHERE tenant = 'now()'", ("hits",)),
        ("SELECT user FROM tb.hits", ("hits",)),  # a column that a function is also named after
        ("WITH t AS (SELECT id FROM tb.hits) SELECT * FROM t JOIN tb.other ON t.id = other.x", ("hits", "other")),
        ("SELECT * FROM tb.hits_quarantine WHERE id IN (SELECT x FROM tb.other)", ("hits", "other")),
        ("SELECT 1", ()),
        ("SELECT now() FROM tb.hits", None),
        ("SELECT user() FROM tb.hits", None),
        ("SELECT today FROM tb.hits", None),  # bare, as ClickHouse also reads it
        ("SELECT NOW() - 1, 2 FROM tb.hits", None),
        ("SELECT count() FROM system.tables", None),
        ("SELECT count() FROM ws_other.hits", None),
        ("SELECT * FROM tb._tb_shadow_hits_0123", None),
        ("SELECT * FROM numbers(10)", None),
        ("SELECT * FROM tb.hits WHERE", None),
    ],
)
def test_what_decides_an_answer_is_read_from_its_sql(sql, sources):
    reads = ReadCache(ResultCache(1 << 20, frozenset({"now", "today", "rand", "user"})), "tb", lambda: DATASOURCES)
    assert reads.sources(sql) == sources


def test_entries_are_bounded_in_bytes_least_recently_used_first():
    cache = ResultCache(16_000, frozenset())
    entries = {key: Entry(b"", (), (0,), 400) for key in range(50)}
    assert not cache.fits(1001) and cache.fits(1000)
    for key, entry in entries.items():
        cache.put((key,), entry)
        if key >= 20:
            assert cache.get((20,)) is entries[20]  # kept in use: it stays
    assert cache.bytes <= 16_000
    assert cache.get((0,)) is None and cache.get((20,)) is entries[20] and cache.get((49,)) is entries[49]

"""A deployment's plan, in process: how each datasource's rows get across, which changes are destructive and why,
which roll-ups are rebuilt, and the token changes `tb deploy` prints."""

from __future__ import annotations

from pathlib import Path

from usage_analytics.local.deployplan import plan
from usage_analytics.local.project import Column, Datasource, Node, Pipe, Project


class Tables:
    """The engine as the planner asks it: which tables exist in the live database, and their rows."""

    def __init__(self, **rows: int):
        self.rows = rows

    def tables(self, database: str) -> dict[str, dict]:
        return {
            name: {"name": name, "engine": "MergeTree", "engine_full": "MergeTree ORDER BY id"} for name in self.rows
        }

    def row_count(self, name: str, database: str) -> int:
        return self.rows[name]


def datasource(name: str, *columns: str, kind: str = "String", tokens: tuple = ()) -> Datasource:
    return Datasource(
        name=name,
        columns=tuple(Column(c, kind if c != "id" else "String", f"$.{c}", None, False) for c in columns),
        engine="MergeTree",
        engine_params=(("sorting_key", "id"),),
        path=f"/p/datasources/{name}.datasource",
        tokens=tokens,
    )


def materialization(name: str, sql: str, target: str) -> Pipe:
    return Pipe(name=name, nodes=(Node("mv", sql, kind="materialized", target=target),), path=f"/p/pipes/{name}.pipe")


def project(*items: Datasource | Pipe) -> Project:
    found = Project(root=Path("/p"))
    for item in items:
        (found.datasources if isinstance(item, Datasource) else found.pipes)[item.name] = item
    return found


LIVE = project(
    datasource("events", "id", "n"),
    datasource("daily", "id", "n"),
    datasource("limits", "id", "n"),
    datasource("notes", "id"),
    materialization("to_daily", "SELECT id, n FROM events", "daily"),
)
ROWS = Tables(events=10, daily=3, limits=5, notes=0)


def test_unchanged_rows_are_carried_and_new_columns_at_the_end_extend():
    after = project(*(ds for name, ds in LIVE.datasources.items() if name != "events"), *LIVE.pipes.values())
    after.datasources["events"] = datasource("events", "id", "n", "plan")
    found = plan(LIVE, after, ROWS, "tb", allow_destructive=False)
    assert found.data == {"daily": "carry", "limits": "carry", "notes": "carry", "events": "extend"}
    assert found.errors == [] and found.backfills == {}
    assert found.report()["data_movements"] == [{"datasource_name": "events", "kind": "backfill_with_forward_query"}]


def test_a_lossy_change_and_a_deletion_are_refused_with_their_reasons_unless_allowed():
    after = project(
        datasource("events", "id", "n"),
        datasource("daily", "id", "n"),
        datasource("limits", "id", "n", kind="UInt64"),  # an existing column's type: its 5 rows cannot stay
        *LIVE.pipes.values(),
    )
    refused = plan(LIVE, after, ROWS, "tb", allow_destructive=False)
    assert [e["filename"] for e in refused.errors] == ["datasources/limits.datasource", "datasources/notes.datasource"]
    assert "incompatible with the 5 rows" in refused.errors[0]["error"]
    assert "notes is deleted" in refused.errors[1]["error"]
    assert all("--allow-destructive-operations" in e["error"] for e in refused.errors)

    allowed = plan(LIVE, after, ROWS, "tb", allow_destructive=True)
    assert allowed.errors == [] and allowed.data["limits"] == "fresh"
    assert [(f["level"], f["resource"]) for f in allowed.feedback] == [("WARNING", "limits"), ("WARNING", "notes")]
    assert allowed.changes.deleted_datasources == ("notes",)


def test_a_changed_materialization_rebuilds_its_target_from_the_sources():
    after = project(
        *LIVE.datasources.values(), materialization("to_daily", "SELECT id, n * 2 AS n FROM events", "daily")
    )
    found = plan(LIVE, after, ROWS, "tb", allow_destructive=False)
    assert found.data["daily"] == "fresh" and found.data["events"] == "carry"
    assert found.backfills == {"daily": ["to_daily"]}
    assert found.changes.changed_pipes == ("to_daily",) and found.changes_anything


def test_a_token_change_alone_is_a_change():
    after = project(*LIVE.datasources.values(), *LIVE.pipes.values())
    after.datasources["notes"] = datasource("notes", "id", tokens=(("ingest", "APPEND"),))
    found = plan(LIVE, after, ROWS, "tb", allow_destructive=False)
    assert not found.changes and found.changes_anything
    assert found.token_changes == [
        {
            "token_name": "ingest",
            "change_type": "create",
            "permission_changes": {
                "added_permissions": [
                    {"resource_name": "notes", "resource_type": "datasource", "permission": "APPEND"}
                ],
                "removed_permissions": [],
            },
        }
    ]

"""A build's diff and the state it compares with, in process: what `tb build` is told is new, changed and deleted,
read back with the CLI's own functions; datafiles that do not parse; the upload folder kept on a refused build."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest
from tinybird.tb.modules.build_common import get_build_changes, has_build_changes

from usage_analytics.local import upload
from usage_analytics.local.build import BuildError, Changes, State, diff, read_project
from usage_analytics.local.project import Column, Datasource, Node, Pipe, Project


def datasource(name: str, *columns: str) -> Datasource:
    return Datasource(
        name=name,
        columns=tuple(Column(c, "String", f"$.{c}", None, False) for c in columns),
        engine="MergeTree",
        engine_params=(("sorting_key", columns[0]),),
    )


def pipe(name: str, sql: str, kind: str = "endpoint") -> Pipe:
    return Pipe(name=name, nodes=(Node(name="endpoint", sql=sql, kind=kind),))


def project(*items: Datasource | Pipe) -> Project:
    found = Project(root=Path("project"))
    for item in items:
        (found.datasources if isinstance(item, Datasource) else found.pipes)[item.name] = item
    return found


BEFORE = project(datasource("events", "id"), datasource("logs", "id"), pipe("top", "SELECT 1"), pipe("old", "SELECT 2"))


def test_an_unchanged_project_is_no_change_as_the_cli_reads_it():
    changes = diff(State.of(BEFORE), BEFORE)
    assert not changes
    assert not has_build_changes(get_build_changes(changes.as_json()))  # "No changes. Build skipped."


def test_new_changed_and_deleted_datasources_and_pipes_by_name():
    after = project(
        datasource("events", "id", "plan"),  # a column added
        datasource("users", "id"),
        pipe("top", "SELECT 1"),
        pipe("new", "SELECT 3"),
        pipe("mv", "SELECT id FROM events", "materialized"),
    )
    changes = diff(State.of(BEFORE), after)
    assert changes == Changes(
        new_datasources=("users",),
        changed_datasources=("events",),
        deleted_datasources=("logs",),
        new_pipes=("new", "mv"),
        deleted_pipes=("old",),
    )
    read = get_build_changes(changes.as_json())
    assert has_build_changes(read)
    assert read["deleted_datasources"] == ["logs"] and read["new_pipes"] == ["new", "mv"]
    assert read["new_connections"] == read["changed_connections"] == read["deleted_connections"] == []


@pytest.mark.parametrize(
    "changed",
    [
        pipe("top", "SELECT 1 "),  # its SQL
        pipe("top", "SELECT 1", kind="copy"),  # its type
        Pipe(name="top", nodes=(Node("first", "SELECT 1"), Node("endpoint", "SELECT * FROM first", "endpoint"))),
    ],
)
def test_a_pipe_changes_with_its_nodes_sql_or_type(changed):
    after = project(*BEFORE.datasources.values(), changed, BEFORE.pipes["old"])
    assert diff(State.of(BEFORE), after) == Changes(changed_pipes=("top",))


def test_the_state_survives_a_round_trip_and_an_older_data_dir_knows_no_pipes(tmp_path):
    path = tmp_path / "workspace.json"
    State.of(BEFORE).save(path)
    assert not diff(State.load(path), BEFORE)
    # a data dir built before pipes were recorded: {datasource: signature}; its pipes are all new once
    path.write_text(json.dumps(State.of(BEFORE).datasources))
    assert diff(State.load(path), BEFORE) == Changes(new_pipes=("top", "old"))
    assert State.load(tmp_path / "missing.json") == State()


def test_every_datafile_that_does_not_parse_is_named_relative_to_the_project(tmp_path):
    (tmp_path / "datasources").mkdir()
    (tmp_path / "datasources/good.datasource").write_text("SCHEMA >\n    `a` String\n")
    (tmp_path / "datasources/bad.datasource").write_text("SCHEMA >\n    `a` Strin\n")
    (tmp_path / "endpoints").mkdir()
    (tmp_path / "endpoints/bad.pipe").write_text("NODE x\nSQL >\n    SELECT 1\nTYPE endpointx\n")
    with pytest.raises(BuildError) as refused:
        read_project(tmp_path)
    problems = {p.filename: p.error for p in refused.value.problems}
    assert sorted(problems) == ["datasources/bad.datasource", "endpoints/bad.pipe"]
    assert problems["datasources/bad.datasource"].startswith("Unknown data type family: Strin")
    assert "Allowed node types" in problems["endpoints/bad.pipe"]


def test_a_refused_build_gives_the_upload_folder_its_previous_files_back(tmp_path):
    folder = tmp_path / "build"
    upload.write_folder({PurePosixPath("datasources/a.datasource"): "old"}, folder)
    with pytest.raises(BuildError), upload.replacing(folder):
        upload.write_folder({PurePosixPath("datasources/b.datasource"): "new"}, folder)
        raise BuildError([])
    assert [p.name for p in folder.rglob("*.datasource")] == ["a.datasource"]
    with upload.replacing(folder):
        upload.write_folder({PurePosixPath("datasources/b.datasource"): "new"}, folder)
    assert [p.name for p in folder.rglob("*.datasource")] == ["b.datasource"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"]

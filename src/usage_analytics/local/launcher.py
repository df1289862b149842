"""Start `usage-analytics local` as its own process, wait until it answers /v0/health, stop it with SIGTERM.

One launcher for everything that needs a running server: the tests (tests/conftest.py), the benchmark
(usage_analytics.bench) and scripts/make_tb_tests.py. The project folder and the data dir are always passed in.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests


def cli_command() -> list[str]:
    """The `usage-analytics` console script of this interpreter's environment, or `python -m` when it has none."""
    script = Path(sys.executable).parent / "usage-analytics"
    return [str(script)] if script.exists() else [sys.executable, "-m", "usage_analytics.cli"]


def free_port() -> int:
    """A TCP port nobody listens on at the moment of asking (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Connection:
    """A running server's base URL and admin token."""

    base_url: str
    token: str

    def get(self, path: str, params: dict | None = None, timeout: float = 300) -> requests.Response:
        """GET `path` with the admin token; an error answer raises."""
        headers = {"Authorization": f"Bearer {self.token}"}
        response = requests.get(f"{self.base_url}{path}", params=params or {}, headers=headers, timeout=timeout)
        response.raise_for_status()
        return response


class ServerProcess:
    """`usage-analytics local --project-dir P --data-dir D --port N` in a subprocess.

    start() returns `client(base_url, admin_token)` once /v0/health answers 200 (a subclass may name its own
    client class); stop() ends the server as a user would (SIGTERM, SIGKILL after 20 s). Output goes to
    `log_path` (default: server-<port>.log beside the data dir)."""

    client: type = Connection

    def __init__(
        self,
        project_dir: Path,
        data_dir: Path,
        port: int | None = None,
        extra_args: list[str] | None = None,
        log_path: Path | None = None,
    ):
        self.project_dir, self.data_dir = Path(project_dir), Path(data_dir)
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else self.data_dir.parent / f"server-{self.port}.log"
        self.extra_args: list[str] = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.seconds_to_healthy: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60, poll: float = 0.05):
        args = [*cli_command(), "local", "--project-dir", str(self.project_dir), "--data-dir", str(self.data_dir)]
        args += ["--port", str(self.port), *self.extra_args]
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        started = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"server exited with {code}:\n{self.output()[-4000:]}")
            try:
                if requests.get(f"{self.base_url}/v0/health", timeout=1).status_code == 200:
                    self.seconds_to_healthy = time.monotonic() - started
                    return self.client(self.base_url, self.admin_token())
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or too busy starting (a loaded machine) to answer within the second
            time.sleep(poll)
        self.stop()
        raise RuntimeError(f"server not healthy after {timeout}s:\n{self.output()[-4000:]}")

    def admin_token(self) -> str:
        """From `GET /tokens`, as the `tb` CLI asks Tinybird Local; from the data dir when the server refuses it
        (it listens beyond loopback)."""
        answer = requests.get(f"{self.base_url}/tokens", timeout=5)
        if answer.status_code == 200:
            return answer.json()["admin_token"]
        return json.loads((self.data_dir / "tokens.json").read_text())["admin_token"]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        self.proc = None
        return code

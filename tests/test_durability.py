"""No acknowledged row lost: kill -9 the server under continuous ingest, restart, count.

The short variant runs in `make test`; the long one (`pytest -m slow tests/test_durability.py`) does 20
cycles. Each reports its figures: cycles, batches acknowledged, rows found, rows lost (must be 0).
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import threading

import pytest
import requests
from conftest import CLI, ServerProcess, event, slice_project

pytestmark = pytest.mark.embedded
BATCH = 200


class Writer(threading.Thread):
    """Sends numbered batches with wait=true until stopped; remembers which ones were acknowledged."""

    def __init__(self, base_url: str, token: str, first_batch: int):
        super().__init__(daemon=True)
        self.base_url, self.token, self.batch = base_url, token, first_batch
        self.acknowledged: list[int] = []
        self.stop = threading.Event()
        self.progress = threading.Condition()
        self.ended = False

    def wait_for(self, batches: int, timeout: float = 60) -> None:
        """Until `batches` batches are acknowledged (or the writer gave up): the kill then lands mid-stream."""
        with self.progress:
            self.progress.wait_for(lambda: len(self.acknowledged) >= batches or self.ended, timeout)

    def run(self):
        try:
            self.send_until_stopped()
        finally:
            with self.progress:
                self.ended = True
                self.progress.notify_all()

    def send_until_stopped(self):
        http = requests.Session()
        while not self.stop.is_set():
            rows = [json.dumps(event(event_id=f"{self.batch}-{i}", session_id=str(self.batch))) for i in range(BATCH)]
            try:
                response = http.post(
                    f"{self.base_url}/v0/events",
                    params={"name": "events", "wait": "true"},
                    data="\n".join(rows),
                    headers={"Authorization": f"Bearer {self.token}"},
                    timeout=10,
                )
            except requests.RequestException:
                return  # the server died under us: this batch was never acknowledged
            if response.status_code == 200 and response.json()["successful_rows"] == BATCH:
                with self.progress:
                    self.acknowledged.append(self.batch)
                    self.progress.notify_all()
            self.batch += 1


def kill_restart_cycles(tmp_path, cycles: int) -> dict:
    server = ServerProcess(slice_project(tmp_path / "project"), tmp_path / "data")
    target = server.start()
    acknowledged: list[int] = []
    next_batch = 0
    rng = random.Random(cycles)
    try:
        for _ in range(cycles):
            writer = Writer(target.base_url, target.token, next_batch)
            writer.start()
            # a few batches in, at once: the next one is in flight when the kill lands (a fixed sleep of 0.3-1.2 s
            # acknowledged nothing on a busy machine, and waited for nothing on an idle one)
            writer.wait_for(rng.randint(1, 4))
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait()
            writer.join(timeout=15)
            acknowledged += writer.acknowledged
            next_batch = writer.batch + 1
            server.stop()
            target = server.start()
        stored = target.sql("SELECT toUInt32(session_id) AS batch, count() AS n FROM events GROUP BY batch")
    finally:
        server.stop()
    found = {row["batch"]: row["n"] for row in stored}
    lost = [b for b in acknowledged if found.get(b) != BATCH]
    torn = {b: n for b, n in found.items() if n != BATCH}
    figures = {
        "cycles": cycles,
        "batches_acknowledged": len(acknowledged),
        "rows_acknowledged": len(acknowledged) * BATCH,
        "rows_found": sum(found.values()),
        "rows_lost": sum(BATCH - found.get(b, 0) for b in lost),
        "half_written_batches": len(torn),
    }
    print(f"\nkill -9 durability: {figures}")
    assert acknowledged, "no batch was acknowledged: the harness tested nothing"
    assert not lost and not torn, figures
    return figures


def test_acknowledged_rows_survive_kill_9(tmp_path):
    kill_restart_cycles(tmp_path, cycles=2)


@pytest.mark.slow
def test_acknowledged_rows_survive_20_kill_9_cycles(tmp_path):
    kill_restart_cycles(tmp_path, cycles=20)


def test_sigterm_finishes_and_frees_the_port(tmp_path, start_server):
    server, target = start_server(slice_project(tmp_path / "project"))
    assert target.send("events", [event(event_id="e1")]).status_code == 200
    assert server.stop() == 0
    again = ServerProcess(server.project_dir, server.data_dir, port=server.port)
    try:
        assert again.start().sql("SELECT count() AS n FROM events") == [{"n": 1}]
    finally:
        again.stop()


def test_a_restart_that_would_lose_data_is_refused(tmp_path, start_server):
    server, target = start_server(slice_project(tmp_path / "project"))
    target.send("events", [event(event_id="e1")])
    server.stop()
    datasource = server.project_dir / "datasources/events.datasource"
    datasource.write_text(datasource.read_text().replace("`user_id` String", "`user_id` UInt64"))
    with pytest.raises(RuntimeError, match="datasource events.*1 rows"):
        server.start(timeout=30)


def test_an_unusable_data_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    args = [CLI, "local", "--project-dir", str(slice_project(tmp_path / "p")), "--data-dir", str(blocker / "data")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "cannot use data dir" in result.stderr and "Traceback" not in result.stderr


def test_fsync_mode_applies_the_table_settings_and_a_restart_without_it_takes_them_off(tmp_path):
    def table_settings(target) -> str:
        found = target.sql("SELECT create_table_query FROM system.tables WHERE name = 'events' AND database = 'tb'")
        return found[0]["create_table_query"]

    server = ServerProcess(slice_project(tmp_path / "project"), tmp_path / "data")
    server.extra_args = ["--fsync"]
    target = server.start()
    try:
        assert "fsync_after_insert = 1, fsync_part_directory = 1" in table_settings(target)
    finally:
        server.stop()
    server.extra_args = []
    target = server.start()
    try:
        assert "fsync_after_insert = 0, fsync_part_directory = 0" in table_settings(target)
    finally:
        server.stop()


def random_text(size: int) -> str:
    return base64.b64encode(os.urandom(size)).decode()


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB filesystem of our own (tmpfs), so filling it harms nothing else."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_a_full_disk_is_a_clear_error_and_loses_nothing_acknowledged(tmp_path, small_disk):
    server = ServerProcess(slice_project(tmp_path / "project"), small_disk / "data")
    target = server.start()
    acknowledged, refused = 0, None
    try:
        for batch in range(100):
            # random bytes, which no codec shrinks: each batch takes ~2 MB of the disk, so the 8 MB fill in a few
            # batches (a repeated "x" compressed so well that 40 MB took a minute to fill)
            rows = [json.dumps(event(event_id=f"{batch}-{i}", properties=random_text(4000))) for i in range(400)]
            response = target.send("events", rows)
            if response.status_code != 200:
                refused = response
                break
            acknowledged += response.json()["successful_rows"]
        assert refused is not None, "8 MB never filled up"
        assert acknowledged, "the disk was full before the first batch: nothing acknowledged was at stake"
        assert refused.status_code == 507
        assert "stored nothing" in refused.json()["error"] and "space" in refused.json()["error"]
        assert target.sql("SELECT count() AS n FROM events") == [{"n": acknowledged}]
    finally:
        server.stop()

"""Copy pipes (TYPE COPY): a pipe's result written into its TARGET_DATASOURCE, on demand and on its COPY_SCHEDULE.

As Tinybird runs them (https://www.tinybird.co/docs/forward/work-with-data/optimize/copy-pipes): `append`, the
default COPY_MODE, adds the result to the target, feeding the target's materializations as any insert does;
`replace` makes the target exactly the result. Either way the result is first built in a table of its own, so a
copy that fails changes nothing, and a replace is swapped in with the roll-ups the target feeds (rewrite.py):
readers see the old target or the new one. A schedule is a cron expression (UTC) or `@on-demand`, the default,
which runs only through the API (`POST /v0/pipes/<name>/copy`).
"""

from __future__ import annotations

import json
import logging
import threading
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime

from croniter import croniter

from .engine import EngineError, quote_name
from .errors import NotFound, bad_request
from .rewrite import shadow_table, swap_in
from .workspace import ImportResult, Workspace, query_error
from .workspaces import Registry

ON_DEMAND = "@on-demand"
_log = logging.getLogger("usage_analytics.local")


def run_copy(ws: Workspace, name: str, values: dict[str, str], mode: str | None = None) -> ImportResult:
    """Run copy pipe `name` with `values` for its parameters; `mode` (the API's `_mode`) overrides its COPY_MODE."""
    pipe = ws.project.copies.get(name)
    if pipe is None:
        raise NotFound(f"The pipe '{name}' does not exist or is not a copy pipe")
    node = pipe.output_node
    mode = mode or node.copy_mode or "append"
    if mode not in ("append", "replace"):
        raise bad_request(f"Invalid _mode '{mode}': use append or replace")
    target = ws.datasource(node.target)
    # a bad or missing parameter is a 400 here; a copy reads as an endpoint does: this workspace's tables only
    select = ws.checked_select(ws._renderers[name], values)
    columns = _columns(ws, select, {c.name for c in target.columns}, name)
    names = ", ".join(quote_name(c) for c in columns)
    limits = replace(ws.settings, max_execution_time=ws.settings.copy_max_execution_time)
    result = ImportResult("copy", target, pipe=pipe, mode=mode)
    built = shadow_table(ws.engine, target.name, ws.database)
    try:
        with ExitStack() as held:
            if mode == "replace":  # no append between the read and the swap, which would lose it (a copy may read
                held.enter_context(ws.gate(target).exclusive())  # its own target, to deduplicate it)
            try:
                with ws.snapshot.read():  # the sources as a whole, never half of a replace swapped in meanwhile
                    ws.engine.query(
                        f"INSERT INTO {ws._table(built)} ({names}) SELECT {names} FROM ({select}) "
                        f"SETTINGS max_execution_time = {float(limits.max_execution_time)}, "
                        "timeout_overflow_mode = 'throw'",
                        params=ws.secrets.values(),
                    )
            except EngineError as exc:
                raise query_error(exc, limits, ws.database) from None
            result.rows = ws.engine.row_count(built, ws.database)
            if mode == "replace":
                swap_in(ws.engine, ws.snapshot, target.name, built, ws._rollups_of(target), ws.database)
            else:
                with ws.gate(target).append():
                    ws.engine.query(f"INSERT INTO {ws._table(target.name)} SELECT * FROM {ws._table(built)}")
    finally:
        ws.reads.written(target.name)  # before the answer: no read after it is answered from before the copy
        ws.engine.query(f"DROP TABLE IF EXISTS {ws._table(built)}")
    return ws._remember(result)


def _columns(ws: Workspace, select: str, accepted: set[str], pipe: str) -> list[str]:
    """The result's columns, inserted by name: each must be one of the target's (the rest get their defaults)."""
    try:
        described = ws.engine.query(f"DESCRIBE ({select})", "JSON", params=ws.secrets.values(), readonly=True)
    except EngineError as exc:
        raise query_error(exc, ws.settings, ws.database) from None
    columns = [row["name"] for row in json.loads(described)["data"]]
    unknown = [c for c in columns if c not in accepted]
    if unknown:
        raise bad_request(f"copy pipe {pipe}: the target datasource has no column {', '.join(unknown)}")
    return columns


def next_run(schedule: str, after: datetime) -> datetime:
    """When a cron `schedule` (in UTC, as Tinybird reads it) runs next, strictly after `after`."""
    return croniter(schedule, after.astimezone(UTC)).get_next(datetime)


class CopyScheduler:
    """Runs every scheduled copy pipe of the server's workspaces while the server runs.

    A thread looks at the clock every `copy_schedule_tick` seconds and starts each copy that is due in a thread of
    its own; a copy still running when it is due again is skipped, never run twice at once, and its next run is
    computed from the schedule after now (missed runs are not caught up). With `copy_schedules_at_start`, each
    schedule also runs once when the server starts.
    """

    def __init__(self, registry: Registry):
        self._registry = registry
        self._settings = registry.first.settings
        self._due: dict[tuple[str, str, str], datetime] = {}  # (database, pipe, schedule) -> its next run
        self._running: dict[tuple[str, str, str], threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="copy-scheduler", daemon=True)

    def __enter__(self) -> CopyScheduler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        with self._lock:
            running = list(self._running.values())
        for thread in running:  # each bounded by copy_max_execution_time: the workspace closes after them
            thread.join()

    def _loop(self) -> None:
        while True:
            try:
                self.run_due(datetime.now(UTC))
            except Exception:  # a workspace deleted or rebuilt meanwhile: the next tick sees it as it is now
                _log.exception("the copy scheduler failed to look at its schedules")
            if self._stop.wait(self._settings.copy_schedule_tick):
                return

    def run_due(self, now: datetime) -> None:
        for ws in self._registry.all():
            for pipe in ws.project.copies.values():
                schedule = pipe.output_node.copy_schedule
                if not schedule or schedule == ON_DEMAND:
                    continue
                key = (ws.database, pipe.name, schedule)  # a schedule changed by a build starts afresh
                first = now if self._settings.copy_schedules_at_start else next_run(schedule, now)
                with self._lock:
                    if now < self._due.setdefault(key, first) or key in self._running:
                        continue
                    self._due[key] = next_run(schedule, now)
                    thread = threading.Thread(target=self._run, args=(ws, pipe.name, key), daemon=True)
                    self._running[key] = thread
                thread.start()

    def _run(self, ws: Workspace, name: str, key: tuple[str, str, str]) -> None:
        try:
            result = run_copy(ws, name, {})  # a schedule has no request: every parameter takes its default
            _log.info("scheduled copy %s: %d rows into %s", name, result.rows, result.datasource.name)
        except Exception:
            _log.exception("scheduled copy %s failed", name)
        finally:
            with self._lock:
                del self._running[key]

"""What a deployment changes: an uploaded project against the live one, and how each datasource's rows get across.

The names (new, changed and deleted datasources and pipes) are build.py's `diff`, and the rules for a table with
rows are its planner's: the new deployment takes a datasource's rows as they are (`carry`), with new columns at
the end or a new DEFAULT (`extend`), or starts it empty (`fresh`). A materialization's target starts empty, and is
backfilled from its sources, when it is new or changed, or when the materialization is. Two changes are
destructive: one that would lose rows, and a datasource deleted; each is refused, with its reason, unless the
caller allows destructive operations (then the rows go, and the feedback says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import build
from .build import Action, BuildError, State
from .engine import Engine
from .project import Project

# how the new deployment gets a datasource's rows, by the build planner's action on the live table; the others
# (CREATE, RECREATE of an empty table, and ADOPT, which here is a table left by no live datafile) start empty
_DATA = {Action.KEEP: "carry", Action.EXTEND: "extend"}


@dataclass
class DeployPlan:
    changes: build.Changes
    data: dict[str, str]  # each datasource of the uploaded project -> carry | extend | fresh
    backfills: dict[str, list[str]] = field(default_factory=dict)  # fresh target -> the materializations refilling it
    errors: list[dict] = field(default_factory=list)  # {filename, error}: the destructive changes refused
    feedback: list[dict] = field(default_factory=list)  # {level, resource, message}
    token_changes: list[dict] = field(default_factory=list)

    @property
    def changes_anything(self) -> bool:
        """A datafile changed, or only the tokens it declares (which a build's diff does not count)."""
        return bool(self.changes) or bool(self.token_changes)

    def report(self) -> dict:
        """The fields of a deployment that `tb deploy` reads to print what it changes."""
        extended = [
            {"datasource_name": name, "kind": "backfill_with_forward_query"}
            for name, how in self.data.items()
            if how == "extend"
        ]
        refilled = [
            {"datasource_name": target, "kind": "backfill_with_mv_queries", "source_mv_name": pipe}
            for target, pipes in self.backfills.items()
            for pipe in pipes
        ]
        return {
            **self.changes.as_json(),
            "new_data_connector_ids": [],
            "disconnected_data_source_names": [],
            "token_changes": self.token_changes,
            "data_movements": extended + refilled,
            "errors": self.errors,
            "feedback": self.feedback,
        }


def plan(live: Project, uploaded: Project, engine: Engine, database: str, allow_destructive: bool) -> DeployPlan:
    """What deploying `uploaded` over `live` (whose tables are in `database`) changes, and does to the data."""
    held = State.of(live)
    changes = build.diff(held, uploaded)
    destructive: list[tuple[str, str, str]] = []  # (datasource, its datafile, why)
    try:
        actions = build.plan(uploaded, held, engine, database)
    except BuildError as exc:  # the changes that would lose rows: planned again without them, which start empty
        files = {name: build.filename(uploaded, ds.path) for name, ds in uploaded.datasources.items()}
        lossy = {name: p.error for p in exc.problems for name, file in files.items() if file == p.filename}
        destructive += [(name, files[name], why) for name, why in lossy.items()]
        kept = {name: ds for name, ds in uploaded.datasources.items() if name not in lossy}
        actions = build.plan(replace(uploaded, datasources=kept), held, engine, database)
    tables = engine.tables(database) if changes.deleted_datasources else {}
    for name in changes.deleted_datasources:
        rows = engine.row_count(name, database) if name in tables else 0
        why = f"datasource {name} is deleted, and with it the {rows} rows it holds"
        destructive.append((name, build.filename(live, live.datasources[name].path), why))
    result = DeployPlan(changes, {name: _DATA.get(actions.get(name), "fresh") for name in uploaded.datasources})
    for name, datafile, why in destructive:
        if allow_destructive:
            result.feedback.append({"level": "WARNING", "resource": name, "message": f"{why}: dropped"})
        else:
            hint = "a destructive operation: deploy with --allow-destructive-operations to go ahead"
            result.errors.append({"filename": datafile, "error": f"{why}; {hint}"})
    rebuilt = set(changes.new_pipes + changes.changed_pipes)
    for name, pipe in uploaded.materializations.items():
        if name in rebuilt:  # its target holds what the old query made: rebuilt with the new one
            result.data[pipe.output_node.target] = "fresh"
    for name, pipe in uploaded.materializations.items():
        if result.data[pipe.output_node.target] == "fresh":
            result.backfills.setdefault(pipe.output_node.target, []).append(name)
    result.token_changes = token_changes(live, uploaded)
    return result


def _grants(project: Project) -> dict[str, set[tuple[str, str, str]]]:
    """Each static token the datafiles declare, with its (resource, resource type, permission) grants."""
    grants: dict[str, set[tuple[str, str, str]]] = {}
    for kind, resources in (("pipe", project.pipes), ("datasource", project.datasources)):
        for resource in resources.values():
            for token, permission in resource.tokens:
                grants.setdefault(token, set()).add((resource.name, kind, permission))
    return grants


def token_changes(live: Project, uploaded: Project) -> list[dict]:
    """The tokens created, deleted or given other permissions, as `tb deploy` prints them."""
    before, after = _grants(live), _grants(uploaded)
    listed = []
    for token in sorted(before.keys() | after.keys()):
        old, new = before.get(token, set()), after.get(token, set())
        if old != new:
            change = "create" if not old else "delete" if not new else "update"
            added, removed = [_permission(g) for g in sorted(new - old)], [_permission(g) for g in sorted(old - new)]
            listed.append(
                {
                    "token_name": token,
                    "change_type": change,
                    "permission_changes": {"added_permissions": added, "removed_permissions": removed},
                }
            )
    return listed


def _permission(grant: tuple[str, str, str]) -> dict:
    resource, kind, permission = grant
    return {"resource_name": resource, "resource_type": kind, "permission": permission}

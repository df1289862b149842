"""Reads a Tinybird project folder with Tinybird's own datafile parser.

Nothing here knows about usage-analytics: any folder of `.datasource` and `.pipe` files loads.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path

import click
from croniter import croniter

_CONNECTOR_SETTINGS = ("kafka_", "import_", "s3_", "gcs_")  # a datasource fed by a connector, which is not served
SKIPPED_DIRS = {".venv", ".git", "node_modules", ".tinybird-local", "__pycache__"}


class ProjectError(Exception):
    """Datafiles that cannot be loaded: each problem is the file (None for the project as a whole) and what is wrong
    with it; the message names the files."""

    def __init__(self, *problems: tuple[Path | None, str]):
        super().__init__("\n".join(f"{path}: {detail}" if path else detail for path, detail in problems))
        self.problems = problems


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    jsonpath: str | None
    default: str | None  # the SQL expression after DEFAULT, if any
    nullable: bool
    codec: str | None = None  # the column's `CODEC(...)` clause, if any

    @property
    def sql_type(self) -> str:
        return f"Nullable({self.type})" if self.nullable and not self.type.startswith("Nullable(") else self.type

    @property
    def stores_null(self) -> bool:
        """The column holds NULL: Nullable, also inside LowCardinality, as ClickHouse allows it nowhere else."""
        return self.sql_type.removeprefix("LowCardinality(").startswith("Nullable(")

    @property
    def accepts_missing(self) -> bool:
        """A missing or null value is stored (as NULL or the DEFAULT) instead of quarantining the row."""
        return self.default is not None or self.stores_null


@dataclass(frozen=True)
class Datasource:
    name: str
    columns: tuple[Column, ...]
    engine: str
    engine_params: tuple[tuple[str, str], ...]  # (ENGINE_* setting, value); a tuple keeps the class hashable
    description: str = ""
    tokens: tuple[tuple[str, str], ...] = ()  # (token name, permission)
    path: str = ""
    indexes: tuple[str, ...] = ()  # data-skipping indexes (INDEXES), each as ClickHouse's `INDEX ...` clause
    forward_query: str | None = None  # FORWARD_QUERY: the SELECT that carries stored rows into a changed schema
    connector: str = ""  # the first connector setting declared (KAFKA_CONNECTION_NAME, IMPORT_CONNECTION_NAME, ...)

    @property
    def engine_args(self) -> dict[str, str]:
        return dict(self.engine_params)


@dataclass(frozen=True)
class Node:
    name: str
    sql: str
    description: str = ""
    kind: str = ""  # "", "endpoint", "materialized" or "copy"
    target: str | None = None  # datasource fed by a materialized or copy node
    copy_mode: str = ""  # a copy node's COPY_MODE: append (the default) or replace
    copy_schedule: str = ""  # a copy node's COPY_SCHEDULE: a cron expression, or @on-demand (the default)


@dataclass(frozen=True)
class Pipe:
    name: str
    nodes: tuple[Node, ...]
    description: str = ""
    tokens: tuple[tuple[str, str], ...] = ()
    path: str = ""

    @property
    def kind(self) -> str:
        return next((n.kind for n in self.nodes if n.kind), "")

    @property
    def output_node(self) -> Node:
        """The node whose result the pipe serves: the typed node, else the last one."""
        return next((n for n in self.nodes if n.kind), self.nodes[-1])


@dataclass
class Project:
    root: Path
    datasources: dict[str, Datasource] = field(default_factory=dict)
    pipes: dict[str, Pipe] = field(default_factory=dict)

    @property
    def endpoints(self) -> dict[str, Pipe]:
        return {name: p for name, p in self.pipes.items() if p.kind == "endpoint"}

    @property
    def materializations(self) -> dict[str, Pipe]:
        return {name: p for name, p in self.pipes.items() if p.kind == "materialized"}

    @property
    def copies(self) -> dict[str, Pipe]:
        return {name: p for name, p in self.pipes.items() if p.kind == "copy"}

    def fixture_for(self, datasource: str) -> Path | None:
        """The rows `tb build` loads into an empty `datasource`: its .ndjson, or else a .sql whose result they are."""
        for suffix in (".ndjson", ".sql"):
            for folder in ("fixtures", "tests/fixtures"):
                candidate = self.root / folder / f"{datasource}{suffix}"
                if candidate.is_file():
                    return candidate
        return None


def _datafiles(root: Path, suffix: str) -> list[Path]:
    """Every `*suffix` file under `root`; SKIPPED_DIRS are not walked at all (a checkout's .venv and node_modules
    hold tens of thousands of folders: reading them cost 1.4 s a start)."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        found += (Path(folder, f) for f in files if f.endswith(suffix))
    return sorted(found)


def _parse(kind: str, path: Path):
    # imported on a cache miss only: Tinybird's datafile parser is a tenth of a second of each start to import
    from tinybird.datafile.parse_datasource import parse_datasource
    from tinybird.datafile.parse_pipe import parse_pipe

    parser = parse_pipe if kind == "pipe" else parse_datasource
    try:
        return parser(str(path)).datafile
    except click.ClickException as exc:  # the parser reports through click
        raise ProjectError((path, exc.message)) from None
    except Exception as exc:
        raise ProjectError((path, str(exc))) from None


def _tokens(datafile) -> tuple[tuple[str, str], ...]:
    return tuple((t["token_name"], t["permission"].upper()) for t in datafile.tokens)


def _unwrapped(sql_type: str) -> str:
    """The type inside any Nullable and LowCardinality wrappers."""
    for wrapper in ("Nullable(", "LowCardinality("):
        if sql_type.startswith(wrapper):
            return _unwrapped(sql_type[len(wrapper) : -1])
    return sql_type


def _default_expr(raw: str | None) -> str | None:
    if not raw:
        return None
    return raw[len("DEFAULT ") :].strip() if raw.upper().startswith("DEFAULT ") else raw.strip()


def load_datasource(path: Path) -> Datasource:
    datafile = _parse("datasource", path)
    node = datafile.nodes[0]
    engine = node.get("engine") or {"type": "MergeTree", "args": []}
    columns = tuple(
        Column(
            name=c["name"],
            type=c["type"],
            jsonpath=c.get("jsonpath"),
            default=_default_expr(c.get("default_value")),
            nullable=bool(c.get("nullable")),
            codec=(c.get("codec") or "").strip() or None,
        )
        for c in node["columns"]
    )
    if not columns:
        raise ProjectError((path, "a datasource needs a SCHEMA with at least one column"))
    for col in columns:
        if col.jsonpath and "[:]" in col.jsonpath and not _unwrapped(col.type).startswith("Array("):
            raise ProjectError(
                (
                    path,
                    f"column {col.name}: jsonpath {col.jsonpath} reads an array, so its type must be "
                    f"an Array, not {col.type}",
                )
            )
    return Datasource(
        name=path.stem,
        columns=columns,
        engine=engine["type"],
        engine_params=tuple(engine.get("args", [])),
        description=datafile.description or "",
        tokens=_tokens(datafile),
        path=str(path),
        indexes=tuple(index.to_sql() for index in node.get("indexes") or ()),
        forward_query=(node.get("forward_query") or "").strip() or None,
        connector=next((key.upper() for key in node if key.startswith(_CONNECTOR_SETTINGS)), ""),
    )


def load_pipe(path: Path) -> Pipe:
    datafile = _parse("pipe", path)
    nodes = tuple(
        Node(
            name=n["name"],
            sql=n["sql"],
            description=n.get("description") or "",
            kind=(n.get("type") or "").lower(),
            target=n.get("datasource") or n.get("target_datasource"),
            copy_mode=(n.get("mode") or "").lower() if (n.get("type") or "").lower() == "copy" else "",
            copy_schedule=(n.get("copy_schedule") or "").strip(),
        )
        for n in datafile.nodes
    )
    if not nodes:
        raise ProjectError((path, "a pipe needs at least one NODE"))
    for node in nodes:
        problem = copy_problem(node)
        if problem:
            raise ProjectError((path, f"node {node.name}: {problem}"))
    return Pipe(
        name=path.stem,
        nodes=nodes,
        description=datafile.description or "",
        tokens=_tokens(datafile),
        path=str(path),
    )


def copy_problem(node: Node) -> str | None:
    """What is wrong with a copy node's COPY_MODE or COPY_SCHEDULE, or None (also for any other node)."""
    if node.kind != "copy":
        return None
    if node.copy_mode not in ("", "append", "replace"):
        return f"COPY_MODE {node.copy_mode} is not append or replace"
    if not node.target:
        return "a TYPE COPY node needs a TARGET_DATASOURCE"
    schedule = node.copy_schedule
    if schedule and schedule != "@on-demand" and not croniter.is_valid(schedule):
        return f"COPY_SCHEDULE {schedule!r} is not a cron expression or @on-demand"
    return None


# What a datafile loads as depends only on its bytes and name (its path is only recorded), Tinybird's parser and this
# module: the key holds all four. The parser takes 20 ms a pipe, most of a start's reading of the project. The cache
# is JSON (no pickle), in the user's cache folder; anything wrong with it (missing, corrupt, unwritable) means a parse.
_LOADER_KEY = hashlib.sha256(Path(__file__).read_bytes() + version("tinybird").encode()).hexdigest()


def cache_dir() -> Path:
    """$USAGE_ANALYTICS_CACHE, else $XDG_CACHE_HOME/usage-analytics, else ~/.cache/usage-analytics."""
    if os.environ.get("USAGE_ANALYTICS_CACHE"):
        return Path(os.environ["USAGE_ANALYTICS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "usage-analytics"


def _from_json(kind: str, data: dict) -> Datasource | Pipe:
    def tuples(values) -> tuple:
        return tuple(tuple(v) if isinstance(v, list) else v for v in values)

    if kind == "pipe":
        nodes = tuple(Node(**n) for n in data.pop("nodes"))
        return Pipe(nodes=nodes, **{**data, "tokens": tuples(data["tokens"])})
    columns = tuple(Column(**c) for c in data.pop("columns"))
    fields = {k: tuples(data[k]) for k in ("engine_params", "tokens", "indexes")}
    return Datasource(columns=columns, **{**data, **fields})


def _cached(kind: str, path: Path) -> Datasource | Pipe:
    """What `path` loads as (a "pipe" or a "datasource"), or what it loaded as for the same bytes before. A file that
    INCLUDEs another is always parsed: its meaning is not in its own bytes."""
    loader = load_pipe if kind == "pipe" else load_datasource
    content = path.read_bytes()
    if b"INCLUDE" in content:
        return loader(path)
    key = hashlib.sha256(b"\0".join([_LOADER_KEY.encode(), kind.encode(), path.name.encode(), content])).hexdigest()
    entry = cache_dir() / "datafiles" / f"{key}.json"
    try:
        return replace(_from_json(kind, json.loads(entry.read_text())), path=str(path))  # the same file elsewhere
    except (OSError, ValueError, TypeError, KeyError):
        pass
    loaded = loader(path)
    text = json.dumps(asdict(loaded))
    if _from_json(kind, json.loads(text)) != loaded:
        return loaded  # a value JSON does not give back as it was (none today): not kept
    keep(entry, text)
    return loaded


def keep(entry: Path, text: str) -> None:
    """Write a cache entry whole or not at all (also with several servers starting at once); a cache that cannot
    be written is no cache, not an error."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial = entry.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        os.replace(partial, entry)
    except OSError:
        pass


def _load_each(paths: list[Path], kind: str, problems: list[tuple[Path | None, str]]) -> list:
    """Every datafile that loads; the problems of those that do not are added to `problems`, so that a build
    reports every broken file at once, as Tinybird does."""
    loaded = []
    for path in paths:
        try:
            loaded.append(_cached(kind, path))
        except ProjectError as exc:
            problems.extend(exc.problems)
    return loaded


def load_project(root: Path) -> Project:
    """Every datafile under `root`; a name used twice is an error, as in Tinybird."""
    root = root.resolve()
    if not root.is_dir():
        raise ProjectError((None, f"project folder {root} does not exist"))
    project = Project(root=root)
    problems: list[tuple[Path | None, str]] = []
    for ds in _load_each(_datafiles(root, ".datasource"), "datasource", problems):
        if ds.name in project.datasources:
            problems.append((Path(ds.path), f"datasource {ds.name} is defined twice"))
        project.datasources[ds.name] = ds
    for pipe in _load_each(_datafiles(root, ".pipe"), "pipe", problems):
        if pipe.name in project.pipes or pipe.name in project.datasources:
            problems.append((Path(pipe.path), f"the name {pipe.name} is already used"))
        project.pipes[pipe.name] = pipe
    unparsed = {path.stem for path, _ in problems if path}  # a target in a broken file is reported as that file
    for pipe in project.pipes.values():
        for node in pipe.nodes:
            if node.target and node.target not in project.datasources and node.target not in unparsed:
                problems.append((Path(pipe.path), f"node {node.name} writes to unknown datasource {node.target}"))
    if problems:
        raise ProjectError(*problems)
    return project

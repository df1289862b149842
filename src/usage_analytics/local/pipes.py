"""Pipe SQL as Tinybird runs it: typed parameters, Tinybird's template engine, nodes inlined as subqueries."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from tinybird.sql_template import (
    REQUIRED_PARAM_NOT_DEFINED,
    SQLTemplateException,
    get_template_and_variables,
    get_var_names_and_types_cached,
    render_sql_template,
)
from tinybird.sql_toolset import replace_tables, sql_get_used_tables

from .errors import NotFound, bad_request
from .project import Node, Pipe
from .rendercache import RenderCache, charge_toolset, text_bytes
from .settings import DEFAULTS
from .sqlcheck import blanked, refuse_file_output

_INT_RANGES = {
    f"{sign}Int{bits}": ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if sign == "" else (0, 2**bits - 1))
    for sign in ("", "U")
    for bits in (8, 16, 32, 64, 128, 256)
}
_INT_RANGES.update({"Int": _INT_RANGES["Int32"], "Integer": _INT_RANGES["Int32"]})
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
_INTEGER = re.compile(r"^[+-]?\d+$")
# ClickHouse's tables that hold no data but generate rows, which pipes use for series (`FROM system.numbers`, as
# Tinybird's own tinynest does): readable in any workspace, unlike the server's other tables
GENERATOR_TABLES = {("system", name) for name in ("numbers", "numbers_mt", "one", "zeros", "zeros_mt")}
# Tinybird's query hints in a template, which it applies to the whole query a pipe runs, whichever node gives them:
# `max_threads(n)` (here at most the machine's cores: a pipe cannot make one query start thousands of threads) and
# `activate('optimize_aggregation_in_order')`. No setting for `activate('analyzer')` or `disable('analyzer')` (this
# ClickHouse has no other query analysis), `activate('parallel_replicas')` (one server has no replicas),
# `backend_hint()` (one backend) or `cache_ttl()` (the result cache is exact: answers never outlive a write).
_ACTIVATED = {"optimize_aggregation_in_order": "optimize_aggregation_in_order = 1"}
_TRAILING_SETTINGS = re.compile(r"\bSETTINGS\b[^()]*$", re.IGNORECASE)
_HINT = r"(?:max_threads = \d+|optimize_aggregation_in_order = 1)"
_HINTS_ADDED = re.compile(rf"\n(?:SETTINGS|,) {_HINT}(?:, {_HINT})*$")  # what with_hints appends, and nothing else


def _valid_datetime(value: str, with_fraction: bool) -> bool:
    text = value.strip().removesuffix("Z")
    if with_fraction and "." in text:
        text, _, fraction = text.partition(".")
        if not fraction.isdigit():
            return False
    for fmt in _DATETIME_FORMATS:
        try:
            datetime.strptime(text, fmt)
            return True
        except ValueError:
            continue
    return False


def type_error(type_name: str, value: str) -> str | None:
    """Why `value` is not a valid `type_name` parameter, or None when it is."""
    if type_name in _INT_RANGES:
        low, high = _INT_RANGES[type_name]
        if not _INTEGER.match(value.strip()):
            return f"expected an integer ({type_name})"
        if not low <= int(value) <= high:
            return f"out of range for {type_name} ({low}..{high})"
    elif type_name in ("Float32", "Float64"):
        try:
            float(value)
        except ValueError:
            return f"expected a number ({type_name})"
    elif type_name in ("DateTime", "DateTime64"):
        if not _valid_datetime(value, type_name == "DateTime64"):
            return f"expected a {type_name} as YYYY-MM-DD HH:MM:SS"
    elif type_name == "Date":
        try:
            datetime.strptime(value.strip(), "%Y-%m-%d")
        except ValueError:
            return "expected a Date as YYYY-MM-DD"
    elif type_name in ("Boolean", "bool") and value.lower() not in ("true", "false", "1", "0"):
        return "expected a Boolean (true or false)"
    return None


@dataclass
class Parameter:
    name: str
    type: str = "String"
    default: object = None
    required: bool = False
    description: str = ""
    enum: tuple[str, ...] = ()
    example: str | None = None

    def check(self, value: str) -> None:
        problem = type_error(self.type, value)
        if problem:
            raise bad_request(f"Invalid value {value!r} for parameter '{self.name}': {problem}")
        if self.enum and value not in self.enum:
            allowed = ", ".join(self.enum)
            raise bad_request(f"Invalid value {value!r} for parameter '{self.name}': expected one of {allowed}")


def _required_message(param: Parameter) -> str:
    """Tinybird's answer to a request without a parameter the pipe needs (as its recorded `tb test` cases show)."""
    return f"{param.name} ({param.type}) query param is required"


def with_hints(sql: str, hints: dict) -> str:
    """`sql` with the query hints its templates gave as settings (a pipe's own SQL cannot name those settings:
    Tinybird's parser refuses them), on a line of their own after any trailing comment, in the query's own trailing
    SETTINGS clause if it has one."""
    settings = [_ACTIVATED[f] for f in sorted(hints.get("activate", ())) if f in _ACTIVATED]
    if "max_threads" in hints:
        settings.insert(0, f"max_threads = {max(1, min(hints['max_threads'], os.cpu_count() or 1))}")
    if not settings:
        return sql
    joined = ", ".join(settings)
    return f"{sql}\n, {joined}" if _TRAILING_SETTINGS.search(blanked(sql)) else f"{sql}\nSETTINGS {joined}"


def without_hints(sql: str) -> str:
    """`sql` without the settings `with_hints` added (what Tinybird's parser reads: it refuses those settings)."""
    return _HINTS_ADDED.sub("", sql)


def _template_sql(node: Node) -> str | None:
    sql = node.sql.lstrip()
    return sql[1:] if sql.startswith("%") else None


def declared_parameters(pipe: Pipe) -> dict[str, Parameter]:
    """Every parameter the pipe's templates declare, merged across nodes (a typed use beats a bare one)."""
    params: dict[str, Parameter] = {}
    for node in pipe.nodes:
        sql = _template_sql(node)
        if sql is None:
            continue
        try:
            template, _, _ = get_template_and_variables(sql, node.name)
            variables = get_var_names_and_types_cached(template)
        except SQLTemplateException as exc:
            raise bad_request(f"pipe {pipe.name}, node {node.name}: {exc}") from None
        for var in variables:
            param = params.setdefault(var["name"], Parameter(var["name"]))
            # a bare `defined(x)` reports String; a typed call such as Int32(x) says what x really is
            if var.get("used_in") is None and var.get("type") and var["type"] != "String":
                param.type = var["type"]
            if var.get("default") is not None and param.default is None:
                param.default = var["default"]
            param.required = param.required or bool(var.get("required"))
            param.description = param.description or var.get("description") or ""
            if var.get("example") is not None and param.example is None:
                param.example = str(var["example"])
            if var.get("enum") and not param.enum:
                param.enum = tuple(str(v) for v in var["enum"])
    return params


class PipeRenderer:
    """Turns (pipe, parameters) into one SQL statement over the workspace's tables."""

    _serials = itertools.count()  # a renderer's own part of the keys of a cache the workspace's pipes share

    def __init__(
        self,
        pipe: Pipe,
        resolve_table: Callable[[str, dict], tuple[str, str] | None],
        cache: RenderCache | None = None,
        secrets: Callable[[], list[str]] = list,
        databases: tuple[str, ...] = (),
    ):
        self.pipe = pipe
        self._databases = databases  # the databases a `db.table` may name: the workspace's own (none: any)
        self._secrets = secrets  # the names of the workspace's secrets, which `tb_secret('name')` may read
        self._resolve_table = resolve_table  # name -> (database, table) or ('', '(subquery)'), None if unknown
        self._cache = cache  # None: nothing is kept (a one-off /v0/sql query)
        self._serial = next(self._serials)
        self._reads_pipes = False  # set once a render inlines another pipe, whose parameters are not in our keys
        self._toolset_budget = cache.max_bytes if cache else DEFAULTS.render_cache_bytes

    @cached_property
    def parameters(self) -> dict[str, Parameter]:
        return declared_parameters(self.pipe)

    def validate(self, values: dict[str, str]) -> None:
        for name, param in self.parameters.items():
            if name in values:
                param.check(values[name])
            elif param.required and param.default is None:
                raise bad_request(_required_message(param))

    def render(
        self, values: dict[str, str], node_name: str | None = None, test_mode: bool = False, hints: bool = True
    ) -> str:
        """The SQL of `node_name` (default: the pipe's output node) with earlier nodes inlined, and with the query
        hints of its templates as settings unless `hints` is False (a pipe read inside another query).

        `test_mode` renders every parameter as a typed placeholder (Tinybird's own check mode), which
        gives the shape of the result without real values: what DESCRIBE needs for the OpenAPI document.
        """
        if test_mode or self._cache is None:
            return self._render(values, node_name, test_mode, hints)
        key = self._key(values, node_name, hints)
        params = key[2]
        sql = self._cache.get(key)
        if sql is None:
            sql = self._render(values, node_name, test_mode, hints)
            if not self._reads_pipes:  # only what rendered without error: a bad request is checked every time
                self._cache.put(key, sql, text_bytes(*(text for pair in params for text in pair)))
        return sql

    def rendered(self, values: dict[str, str]) -> str | None:
        """The output node's SQL for `values` if `render` has it kept (no template runs), else None."""
        return None if self._cache is None else self._cache.get(self._key(values, None, True))

    def _key(self, values: dict[str, str], node_name: str | None, hints: bool) -> tuple:
        # the pipe's own parameters only: a value it does not declare cannot change its SQL, and a caller sending
        # many of them must not fill the cache
        params = tuple(sorted((k, v) for k, v in values.items() if k in self.parameters))
        return (self._serial, node_name, params, hints)

    def _render(self, values: dict[str, str], node_name: str | None, test_mode: bool, hints: bool) -> str:
        sql, given = self.render_parts(values, node_name, test_mode)
        return with_hints(sql, given) if hints else sql

    def render_parts(
        self, values: dict[str, str], node_name: str | None = None, test_mode: bool = False
    ) -> tuple[str, dict]:
        """`render`'s SQL without the hints, and the hints its templates gave (`with_hints` adds them)."""
        if not test_mode:
            self.validate(values)
        target = node_name or self.pipe.output_node.name
        rendered: dict[tuple[str, str], tuple[str, str]] = {}
        hints: dict = {}
        for node in self.pipe.nodes:
            sql = self._render_node(node, values, test_mode, hints)
            sql = self._resolve(sql, rendered, values)
            if node.name == target:
                return sql, hints
            rendered[("", node.name)] = ("", f"({sql})")
        raise NotFound(f"pipe {self.pipe.name} has no node {target}")

    def _render_node(self, node: Node, values: dict[str, str], test_mode: bool, hints: dict) -> str:
        """`node`'s SQL for `values`; the template's query hints are added to `hints`."""
        template = _template_sql(node)
        if template is None:
            return node.sql
        try:
            secrets = [f"tb_secret_{name}" for name in self._secrets()]
            sql, results, _ = render_sql_template(
                template, dict(values), secrets=secrets, name=node.name, test_mode=test_mode
            )
            if "max_threads" in results:
                hints["max_threads"] = results["max_threads"]
            hints.setdefault("activate", set()).update(results.get("activate", ()))
        except SQLTemplateException as exc:
            missing = next((p for n, p in self.parameters.items() if n not in values and p.default is None), None)
            if REQUIRED_PARAM_NOT_DEFINED in str(exc) and missing is not None:
                # a typed parameter used without a value or a default: Tinybird names it
                raise bad_request(_required_message(missing)) from None
            raise bad_request(str(exc).removeprefix("Template Syntax Error: ")) from None
        except ValueError as exc:  # the template's own {{ error('...') }}
            raise bad_request(str(exc)) from None
        return sql

    def _resolve(self, sql: str, earlier: dict, values: dict[str, str]) -> str:
        refuse_file_output(sql, f"pipe {self.pipe.name}")
        charge_toolset(self._toolset_budget, sql)  # Tinybird's toolset caches what it parses: see rendercache
        mapping = dict(earlier)
        try:
            used = sql_get_used_tables(sql, raising=True, table_functions=False)
        except Exception as exc:
            raise bad_request(f"pipe {self.pipe.name}: invalid SQL: {str(exc).splitlines()[0]}") from None
        for database, name, _ in used:
            key = ("", name)
            if (database, name) in GENERATOR_TABLES:
                continue
            if database and self._databases and database not in self._databases:
                # another workspace's tables (or the server's): Tinybird shares a datasource only when told to
                raise bad_request(f"pipe {self.pipe.name}: {database}.{name} is not a datasource of this workspace")
            if database or key in mapping:
                continue
            resolved = self._resolve_table(name, values)
            if resolved is not None:
                mapping[key] = resolved
                self._reads_pipes = self._reads_pipes or resolved[0] == ""  # another pipe, as a subquery
        try:
            resolved_sql = replace_tables(sql, mapping)
        except Exception as exc:
            raise bad_request(f"pipe {self.pipe.name}: {str(exc).splitlines()[0]}") from None
        charge_toolset(self._toolset_budget, resolved_sql, *(table for _, table in mapping.values()))
        return resolved_sql

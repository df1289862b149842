"""One checker for every SQL fragment a caller sends: `replace_condition`, `delete_condition` and `/v0/sql`'s `q`.

Tinybird's own parser (`tinybird.sql_toolset`, ClickHouse's parser inside) lists the tables and table functions
a statement reads and refuses the functions and settings Tinybird restricts (`file`, `url`, `s3`, `remote`,
`executable`, `dictGet`, `getSetting`, `readonly`, `max_execution_time`, ...). On top of it: a condition may read
only its own datasource and may not step out of the parentheses it is placed in; no statement may write a file
on the server (`INTO OUTFILE` is carried out by chDB itself, client-side, so `readonly` does not stop it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tinybird.sql_toolset import ENABLED_TABLE_FUNCTIONS, sql_get_used_tables

from . import ddl
from .engine import DATABASE
from .errors import bad_request

# string literals, quoted identifiers and comments: what keyword and parenthesis checks must not look inside
_OPAQUE = re.compile(
    r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`|--[^\n]*|#[^\n]*|/\*.*?(?:\*/|$)", re.DOTALL
)
_FILE_OUTPUT = re.compile(r"\bINTO\s+OUTFILE\b|\bFROM\s+INFILE\b", re.IGNORECASE)


def blanked(sql: str) -> str:
    """`sql` with literals, quoted names and comments blanked out."""
    return _OPAQUE.sub(" ", sql)


def refuse_file_output(sql: str, what: str) -> None:
    if _FILE_OUTPUT.search(blanked(sql)):
        raise bad_request(f"{what}: INTO OUTFILE and FROM INFILE are not allowed (no statement may touch server files)")


def used_tables(sql: str, what: str) -> list[tuple[str, str, str]]:
    """(database, table, table function) of everything `sql` reads; Tinybird's restrictions raise a 400."""
    try:
        return sql_get_used_tables(sql, raising=True, table_functions=True)
    except Exception as exc:  # the toolset raises ValueError subclasses with ClickHouse's parser message
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise bad_request(f"{what}: {message.removeprefix('DB::Exception: ')}") from None


def check_condition(condition: str, datasource: str, parameter: str, database: str = DATABASE) -> None:
    """A `replace_condition` or `delete_condition`: one expression over `datasource`'s own columns, checked as
    it runs (`... FROM <datasource> WHERE (<condition>)`), so it cannot close that parenthesis and go on."""
    if not condition or not condition.strip():
        raise bad_request(f"The '{parameter}' parameter is empty: give a SQL condition on the datasource's columns")
    code = blanked(condition)
    if ";" in code:
        raise bad_request(f"{parameter} must be one SQL condition, without ';'")
    depth = 0
    for char in code:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        raise bad_request(f"{parameter} has unbalanced parentheses: it must be one SQL condition")
    refuse_file_output(condition, parameter)
    statement = f"SELECT count() FROM {ddl.table(datasource, database)} WHERE ({condition})"
    for used_db, name, function in used_tables(statement, parameter):
        if function:
            raise bad_request(f"{parameter} may not call the table function {function}()")
        if name != datasource or used_db not in ("", database):
            where = f"{used_db}.{name}" if used_db else name
            raise bad_request(f"{parameter} may read only the columns of {datasource}, not {where}")


def check_query(q: str, readable: Callable[[str, str], bool]) -> None:
    """A `/v0/sql` query: tables that `readable(database, name)` allows, Tinybird's table functions, no files."""
    refuse_file_output(q, "q")
    for database, name, function in used_tables(q, "q"):
        if function and function not in ENABLED_TABLE_FUNCTIONS:
            raise bad_request(f"q: the table function {function}() is not allowed in /v0/sql")
        if name and not readable(database, name):
            where = f"{database}.{name}" if database else name
            raise bad_request(f"q: resource '{where}' not found: query the workspace's datasources and pipes")


_WITH_OR_SELECT = re.compile(r"\b(WITH|SELECT)\b|[(),]", re.IGNORECASE)
_EXPRESSION_ALIAS = re.compile(r"^(?P<expr>.+?)\s+AS\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*$", re.IGNORECASE | re.DOTALL)


def with_aliases_named_like(sql: str, columns: set[str]) -> list[str]:
    """The `WITH <expression> AS <name>` aliases of `sql` (any level) named like one of `columns`. Tinybird answers
    these as ClickHouse did before 24.3, reading the column where the name is used (ClickHouse issue 61950); ClickHouse
    26.9, whose analyzer can no longer be turned off, reads the alias. `name AS (SELECT ...)` (a subquery) is not
    such an alias."""
    code, found = blanked(sql), []
    for start in (m.end() for m in re.finditer(r"\bWITH\b", code, re.IGNORECASE)):
        depth, item_start, items = 0, start, []
        for token in _WITH_OR_SELECT.finditer(code, start):
            text = token.group(0)
            if text == "(":
                depth += 1
            elif text == ")":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and (text == "," or text.upper() == "SELECT"):
                items.append(code[item_start : token.start()])
                item_start = token.end()
                if text.upper() == "SELECT":
                    break
        for item in items:
            alias = _EXPRESSION_ALIAS.match(item.strip())
            if alias and alias["name"] in columns and not alias["expr"].strip().upper().startswith("SELECT"):
                found.append(alias["name"])
    return found

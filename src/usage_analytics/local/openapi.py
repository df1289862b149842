"""An OpenAPI 3 document of a workspace's endpoints, built from the datafiles.

Parameters come from the templates' typed declarations (type, default, required, enum, description,
example); response columns from ClickHouse's own DESCRIBE of each endpoint rendered in Tinybird's
check mode, so the document always matches what the server returns.
"""

from __future__ import annotations

from .engine import EngineError
from .errors import RequestError
from .pipes import Parameter, PipeRenderer

_INTEGER = {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "Int", "Integer"}
_FORMATS = {"DateTime": "date-time", "DateTime64": "date-time", "Date": "date"}


def _param_schema(param: Parameter) -> dict:
    if param.type in _INTEGER:
        schema: dict = {"type": "integer"}
    elif param.type in ("Float32", "Float64"):
        schema = {"type": "number"}
    elif param.type in ("Boolean", "bool"):
        schema = {"type": "boolean"}
    else:
        schema = {"type": "string"}
        if param.type in ("DateTime", "DateTime64"):
            schema["pattern"] = r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2}(\.\d+)?)?$"
        elif param.type == "Date":
            schema["format"] = "date"
    if param.enum:
        schema["enum"] = list(param.enum)
    if param.default is not None:
        schema["default"] = param.default
    if param.example is not None:
        schema["example"] = param.example
    return schema


def _column_schema(ch_type: str) -> dict:
    base = ch_type
    for wrapper in ("LowCardinality(", "Nullable("):
        if base.startswith(wrapper):
            base = base[len(wrapper) : -1]
    nullable = ch_type.startswith("Nullable(") or "(Nullable(" in ch_type
    if base.startswith(("Int", "UInt")) and "Int128" not in base and "Int256" not in base:
        schema: dict = {"type": "integer"}
    elif base.startswith(("Float", "Decimal")):
        schema = {"type": "number"}
    elif base.startswith("Array("):
        schema = {"type": "array", "items": _column_schema(base[len("Array(") : -1])}
    else:
        schema = {"type": "string"}
        fmt = _FORMATS.get(base.split("(")[0])
        if fmt:
            schema["description"] = f"{base} as {'YYYY-MM-DD' if fmt == 'date' else 'YYYY-MM-DD HH:MM:SS'}"
    schema["x-clickhouse-type"] = ch_type
    if nullable:
        schema["nullable"] = True
    return schema


def _columns(workspace, renderer: PipeRenderer) -> list[dict]:
    try:
        sql = renderer.render({}, test_mode=True)
        return workspace.engine.rows(f"DESCRIBE TABLE ({sql})")
    except (EngineError, RequestError):
        return []  # a template that cannot render without values still documents its parameters


def _operation(workspace, renderer: PipeRenderer) -> dict:
    pipe = renderer.pipe
    params = [
        {
            "name": p.name,
            "in": "query",
            "required": p.required and p.default is None,
            "description": p.description or f"{p.type} parameter",
            "schema": _param_schema(p),
        }
        for p in renderer.parameters.values()
    ]
    columns = _columns(workspace, renderer)
    row = {"type": "object", "properties": {c["name"]: _column_schema(c["type"]) for c in columns}}
    body = {
        "type": "object",
        "properties": {
            "meta": {"type": "array", "items": {"type": "object"}},
            "data": {"type": "array", "items": row},
            "rows": {"type": "integer"},
            "rows_before_limit_at_least": {"type": "integer"},
            "statistics": {"type": "object"},
        },
    }
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "get": {
            "operationId": pipe.name,
            "summary": pipe.description.splitlines()[0] if pipe.description else pipe.name,
            "description": pipe.description,
            "parameters": params,
            "responses": {
                "200": {"description": "The endpoint's rows", "content": {"application/json": {"schema": body}}},
                "400": {"description": "A parameter is missing or invalid", **error},
                "403": {"description": "The token may not read this endpoint", **error},
                "429": {"description": "The token's rate limit is exceeded", **error},
            },
        }
    }


def document(workspace, names: list[str], base_url: str) -> dict:
    return {
        "openapi": "3.0.3",
        "info": {"title": f"{workspace.project_dir.name} endpoints", "version": "1.0.0"},
        "servers": [{"url": base_url}],
        "security": [{"bearer": []}, {"token": []}],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "token": {"type": "apiKey", "in": "query", "name": "token"},
            },
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
            },
        },
        "paths": {f"/v0/pipes/{name}.json": _operation(workspace, workspace.endpoint(name)) for name in names},
    }
